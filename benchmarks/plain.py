"""A plain implementation of the protocol, written as a course would write it: the baseline of `make bench`.

Per-sample Python Dataset and a collate function into one flat ("sparse") batch of the real events,
nn.TransformerEncoder (post-norm, GELU, dropout) over each batch padded to its longest row with a causal
and a key-padding mask, and the textbook loop model(batch) -> loss -> backward -> step. Evaluation:
scores = last output @ item table.T, torch.topk(20), metrics from the top-20 lists.

It computes the same objectives as seqrec's `bce`, `softmax`, `inbatch` and `logq` with their default
settings (the softmax sends gradients into the item table, as seqrec's `loss=softmax`), so that the two
do the same work per event; nothing here is tuned for speed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seqrec.data.types import SplitData

TOP_K = 20


class TrainDataset(Dataset):
    """One training sequence per index: inputs = items[:-1], positives = items[1:] (last max_seq_len),
    one uniform negative per position (for bce), positions counted backward from the most recent item."""

    def __init__(self, sequences: list[list[int]], num_items: int, max_seq_len: int):
        self.sequences = sequences
        self.num_items = num_items
        self.max_seq_len = max_seq_len

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        items = self.sequences[index]
        inputs = items[:-1][-self.max_seq_len :]
        return {
            "item_ids": inputs,
            "positives": items[1:][-self.max_seq_len :],
            "negatives": np.random.randint(0, self.num_items, size=len(inputs)).tolist(),
            "positions": list(range(len(inputs) - 1, -1, -1)),
            "lengths": len(inputs),
        }


class EvalDataset(Dataset):
    """One evaluation sample per index: the last max_seq_len history items and the target."""

    def __init__(self, histories: list[list[int]], targets: list[int], max_seq_len: int):
        self.histories = histories
        self.targets = targets
        self.max_seq_len = max_seq_len

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict:
        inputs = self.histories[index][-self.max_seq_len :]
        return {
            "item_ids": inputs,
            "positions": list(range(len(inputs) - 1, -1, -1)),
            "lengths": len(inputs),
            "target": self.targets[index],
        }


def collate(samples: list[dict]) -> dict:
    """Lists are concatenated into one flat tensor of all events; scalars become a [B] tensor."""
    batch = {}
    for key, first in samples[0].items():
        values = [sample[key] for sample in samples]
        if isinstance(first, list):
            batch[key] = torch.tensor(sum(values, []), dtype=torch.long)
        else:
            batch[key] = torch.tensor(values, dtype=torch.long)
    return batch


class PlainSasRec(nn.Module):
    """SASRec with nn.TransformerEncoder; returns the encoder output at every real event, flat [N, D]."""

    def __init__(self, num_items: int, dim: int, heads: int, layers: int, dropout: float, max_seq_len: int):
        super().__init__()
        self.item_embedding = nn.Embedding(num_items, dim)
        self.position_embedding = nn.Embedding(max_seq_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        for name, value in self.named_parameters():
            if "norm" in name and "weight" in name:
                nn.init.ones_(value)
            elif "weight" in name:
                nn.init.trunc_normal_(value, std=0.02, a=-0.04, b=0.04)
            else:
                nn.init.zeros_(value)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs at the real events [N, D] and the padding mask [B, L] (True = real event)."""
        lengths = batch["lengths"]
        seq_len = int(lengths.max())
        real = torch.arange(seq_len, device=lengths.device)[None, :] < lengths[:, None]
        tokens = torch.zeros(len(lengths), seq_len, self.item_embedding.embedding_dim, device=lengths.device)
        tokens[real] = self.item_embedding(batch["item_ids"]) + self.position_embedding(batch["positions"])
        causal = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=lengths.device), diagonal=1)
        output = self.encoder(tokens, mask=causal, src_key_padding_mask=~real, is_causal=True)
        return output[real], real


def bce_loss(
    model: PlainSasRec, batch: dict, queries: torch.Tensor, item_prior: torch.Tensor
) -> torch.Tensor:
    table = model.item_embedding
    positive = (queries * table(batch["positives"])).sum(-1)
    negative = (queries * table(batch["negatives"])).sum(-1)
    logits = torch.cat([positive, negative])
    labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
    return F.binary_cross_entropy_with_logits(logits, labels)


def softmax_loss(
    model: PlainSasRec, batch: dict, queries: torch.Tensor, item_prior: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(queries @ model.item_embedding.weight.T, batch["positives"])


def inbatch_loss(
    model: PlainSasRec, batch: dict, queries: torch.Tensor, item_prior: torch.Tensor, correct: bool = False
) -> torch.Tensor:
    positives = batch["positives"]
    negatives = positives[torch.randperm(len(positives), device=positives.device)[:255]]
    table = model.item_embedding
    positive = (queries * table(positives)).sum(-1)
    negative = queries @ table(negatives).T
    if correct:
        negative = negative - torch.log(item_prior[negatives] + 1e-9)[None]
    logits = torch.cat([positive[:, None], negative], dim=1)
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def logq_loss(
    model: PlainSasRec, batch: dict, queries: torch.Tensor, item_prior: torch.Tensor
) -> torch.Tensor:
    return inbatch_loss(model, batch, queries, item_prior, correct=True)


LOSSES = {"bce": bce_loss, "softmax": softmax_loss, "inbatch": inbatch_loss, "logq": logq_loss}


class PlainRun:
    """The plain implementation on one split: `train(steps)` and `evaluate(samples)`, timed by the caller."""

    def __init__(
        self, split: SplitData, loss: str, device: torch.device, max_seq_len: int = 200, batch_size: int = 256
    ):
        item_seq = split.item_seq.tolist()
        starts, ends = split.train_start.tolist(), split.train_end.tolist()
        sequences = [item_seq[s:e] for s, e in zip(starts, ends, strict=True)]
        self.train_data = TrainDataset(sequences, split.num_items, max_seq_len)
        valid = split.valid
        histories = [
            item_seq[s:e]
            for s, e in zip(valid.history_start.tolist(), valid.history_end.tolist(), strict=True)
        ]
        self.eval_data = EvalDataset(histories, valid.target.tolist(), max_seq_len)
        counts = np.zeros(split.num_items)
        for index in range(len(self.train_data)):
            np.add.at(counts, self.train_data[index]["item_ids"], 1)
        self.item_prior = torch.tensor(counts / counts.sum(), dtype=torch.float32, device=device)
        self.device = device
        self.loss_fn = LOSSES[loss]
        self.batch_size = batch_size
        torch.manual_seed(0)
        self.model = PlainSasRec(split.num_items, 64, 2, 2, 0.1, max_seq_len).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loader = DataLoader(
            self.train_data, batch_size, shuffle=True, drop_last=True, collate_fn=collate
        )
        self.batches = iter(self.loader)

    def next_batch(self) -> dict:
        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        return {key: value.to(self.device) for key, value in batch.items()}

    def train(self, steps: int) -> int:
        """`steps` optimizer steps; returns the number of supervised events."""
        self.model.train()
        events = 0
        for _ in range(steps):
            batch = self.next_batch()
            queries, _ = self.model(batch)
            loss = self.loss_fn(self.model, batch, queries, self.item_prior)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            events += len(queries)
        loss.item()  # waits for the device
        return events

    @torch.no_grad()
    def evaluate(self, num_samples: int) -> dict:
        """DCG/HitRate/Coverage@20 of the first num_samples evaluation samples."""
        self.model.eval()
        subset = torch.utils.data.Subset(self.eval_data, range(min(num_samples, len(self.eval_data))))
        top_items, targets = [], []
        for batch in DataLoader(subset, self.batch_size, collate_fn=collate):
            batch = {key: value.to(self.device) for key, value in batch.items()}
            outputs, _ = self.model(batch)
            last = outputs[torch.cumsum(batch["lengths"], 0) - 1]
            scores = last @ self.model.item_embedding.weight.T
            top_items.append(torch.topk(scores, TOP_K, dim=1).indices)
            targets.append(batch["target"])
        top, target = torch.cat(top_items), torch.cat(targets)
        hits = (top == target[:, None]).float()
        discounts = 1 / torch.log2(torch.arange(2, TOP_K + 2, device=hits.device).float())
        return {
            "dcg@20": float((hits * discounts).sum(1).mean()),
            "hitrate@20": float(hits.sum(1).mean()),
            "coverage@20": top.unique().numel() / len(self.model.item_embedding.weight),
        }
