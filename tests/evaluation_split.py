"""The evaluation tests' hand-built split of three users, scores that depend on the input window, and their
brute-force scores (tests/test_evaluation.py, tests/test_evaluation_original.py)."""

from __future__ import annotations

import torch

from seqrec.data.types import EvalSamples

NUM_ITEMS = 20
MAX_SEQ_LEN = 3
KS = [1, 3, 6]

# Users' item sequences back to back: A = 0..7, B = 8..13, C = 14..15. Some targets repeat a history item.
ITEM_SEQ = [3, 1, 4, 1, 5, 9, 2, 6] + [2, 7, 1, 8, 2, 8] + [0, 5]
WINDOWS = [(0, 3), (0, 5), (0, 7), (8, 10), (8, 12), (8, 13), (14, 15)]  # (history_start, history_end)


def make_samples(windows=WINDOWS, item_seq=ITEM_SEQ) -> EvalSamples:
    start = torch.tensor([s for s, _ in windows])
    end = torch.tensor([e for _, e in windows])
    return EvalSamples(
        user=torch.arange(len(windows)),
        history_start=start,
        history_end=end,
        target=torch.tensor(item_seq)[end],
    )


def score_table(seed: int = 0) -> torch.Tensor:
    """[I, I] integer-valued scores, so that ties are frequent."""
    return torch.randint(0, 5, (NUM_ITEMS, NUM_ITEMS), generator=torch.Generator().manual_seed(seed)).float()


def window_score_fn(table: torch.Tensor):
    """Scores depend on the first and the last item of the (truncated) input window."""

    def score_fn(inputs: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        assert torch.is_inference_mode_enabled()
        last = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]
        return 4 * table[inputs[:, 0]] + table[last]

    return score_fn


def brute_force_scores(table: torch.Tensor, start: int, end: int) -> list[float]:
    window = ITEM_SEQ[start:end][-MAX_SEQ_LEN:]
    return (4 * table[window[0]] + table[window[-1]]).tolist()
