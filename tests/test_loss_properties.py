"""Properties across objectives: configs, limits that equal the full softmax, temperature, precision."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from seqrec.losses import sampling
from seqrec.losses.base import Objective, ObjectiveInput
from seqrec.losses.bce import BCE
from seqrec.losses.gbce import GBCE
from seqrec.losses.inbatch import InBatch
from seqrec.losses.inbatch_symmetric import InBatchSymmetric
from seqrec.losses.logq import LogQ
from seqrec.losses.mixed import Mixed
from seqrec.losses.sampled_softmax import SampledSoftmax
from seqrec.losses.softmax import Softmax

LOSS_CONFIGS = Path(__file__).parents[1] / "conf" / "loss"
OBJECTIVES = ["bce", "softmax", "inbatch", "logq", "sampled_softmax", "gbce", "mixed", "inbatch_symmetric"]

# Small versions of every objective: name -> factory(temperature) (None where there is no temperature).
SMALL = {
    "bce": lambda temperature=None: BCE(num_negatives=3),
    "gbce": lambda temperature=None: GBCE(num_negatives=4),
    "softmax": lambda temperature=1.0: Softmax(temperature=temperature),
    "chunked_softmax": lambda temperature=1.0: Softmax(temperature=temperature, max_logits=20),
    "inbatch": lambda temperature=1.0: InBatch(num_negatives=5, temperature=temperature),
    "logq": lambda temperature=1.0: LogQ(num_negatives=5, temperature=temperature),
    "sampled_softmax": lambda temperature=1.0: SampledSoftmax(6, "popularity", temperature=temperature),
    "mixed": lambda temperature=1.0: Mixed(3, 3, temperature=temperature),
    "inbatch_symmetric": lambda temperature=1.0: InBatchSymmetric(num_negatives=5, temperature=temperature),
}
WITH_TEMPERATURE = [name for name in SMALL if name not in ("bce", "gbce")]


def replace(batch: ObjectiveInput, **fields) -> ObjectiveInput:
    return ObjectiveInput(**(vars(batch) | fields))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_loss_config_instantiates_with_the_class_defaults(name, make_input):
    config = OmegaConf.load(LOSS_CONFIGS / f"{name}.yaml")
    objective = hydra.utils.instantiate(config)
    assert isinstance(objective, Objective)
    # The YAML states every hyperparameter, with the class default (the protocol value) as its value.
    defaults = {key: p.default for key, p in inspect.signature(type(objective)).parameters.items()}
    assert {key: value for key, value in config.items() if key != "_target_"} == defaults
    loss = objective(make_input(num_items=300))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_logq_with_uniform_prior_is_inbatch_with_a_constant_shift(make_input, spy):
    """A uniform prior makes the logQ correction the same constant log I for every negative. The
    protocol leaves the positive uncorrected, so this is in-batch softmax with the positive's logit
    lowered by log I (not plain in-batch): checked through InBatch's own correction hook."""
    batch = make_input(num_items=10, item_counts=torch.full((10,), 3.0, dtype=torch.float64))

    class ConstantShift(InBatch):
        def negative_correction(self, negatives, batch):
            return math.log(10)

    torch.manual_seed(0)
    logq = LogQ(num_negatives=5)(batch)
    torch.manual_seed(0)
    shifted = ConstantShift(num_negatives=5)(batch)
    torch.manual_seed(0)
    plain = InBatch(num_negatives=5)(batch)
    assert logq.item() == pytest.approx(shifted.item(), rel=1e-8)  # the 1e-9 epsilon is the only gap
    assert logq.item() > plain.item()


@pytest.mark.parametrize("remove_accidental_hits", [False, True])
def test_logq_correcting_the_positive_with_uniform_prior_equals_inbatch(make_input, remove_accidental_hits):
    """Yi et al.'s variant corrects every logit by the same log I under a uniform prior: softmax
    is shift-invariant, so the loss is exactly plain in-batch softmax."""
    batch = make_input(num_items=10, item_counts=torch.full((10,), 3.0, dtype=torch.float64))
    torch.manual_seed(0)
    logq = LogQ(num_negatives=5, remove_accidental_hits=remove_accidental_hits, correct_positive=True)(batch)
    torch.manual_seed(0)
    plain = InBatch(num_negatives=5, remove_accidental_hits=remove_accidental_hits)(batch)
    assert logq.item() == pytest.approx(plain.item(), rel=1e-9)


def test_logq_correcting_the_positive_differs_under_a_skewed_prior(make_input):
    batch = make_input(num_items=10, item_counts=torch.arange(1.0, 11.0, dtype=torch.float64))
    torch.manual_seed(0)
    corrected = LogQ(num_negatives=5, correct_positive=True)(batch)
    torch.manual_seed(0)
    protocol = LogQ(num_negatives=5)(batch)
    assert abs(corrected.item() - protocol.item()) > 1e-3


def test_inbatch_over_a_pool_of_every_item_once_is_full_softmax(make_input):
    """Positives = every item exactly once and all of them drawn: the negatives are the whole
    catalog; removing the accidental hit (the positive itself) leaves exactly the full softmax."""
    positives = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    batch = make_input(num_items=12, lengths=(5, 3, 4), positives=positives)
    inbatch = InBatch(num_negatives=12, remove_accidental_hits=True, temperature=0.5)(batch)
    softmax = Softmax(temperature=0.5)(batch)
    assert inbatch.item() == pytest.approx(softmax.item(), rel=1e-12)


def test_sampled_softmax_drawing_every_item_once_is_full_softmax(make_input, monkeypatch):
    """k = I negatives that are exactly the catalog: the correction -log(k / I) is 0, so with the
    positive's own copy removed the loss is the full softmax."""
    batch = make_input(num_items=12)
    objective = SampledSoftmax(num_negatives=12, sampling="uniform", remove_accidental_hits=True)

    def every_item(catalog, num, device):
        return torch.arange(num), torch.full((num,), -math.log(catalog.num_items), dtype=torch.float64)

    monkeypatch.setattr(objective, "draw_negatives", every_item)
    assert objective(batch).item() == pytest.approx(Softmax()(batch).item(), rel=1e-12)


@pytest.mark.parametrize("name", WITH_TEMPERATURE)
def test_temperature_divides_the_logits(name, make_input):
    batch = make_input()
    torch.manual_seed(0)
    tempered = SMALL[name](temperature=0.25)(batch)
    torch.manual_seed(0)
    scaled_queries = SMALL[name](temperature=1.0)(replace(batch, queries=batch.queries / 0.25))
    assert tempered.item() == pytest.approx(scaled_queries.item(), rel=1e-12)
    torch.manual_seed(0)
    assert SMALL[name](temperature=1.0)(batch).item() != pytest.approx(tempered.item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(SMALL))
def test_low_precision_inputs_give_float32_losses(name, dtype, make_input):
    low = make_input(dtype=dtype, seed=2)
    upcast = replace(
        low,
        queries=low.queries.detach().float().requires_grad_(),
        item_embeddings=low.item_embeddings.detach().float().requires_grad_(),
    )
    torch.manual_seed(0)
    loss = SMALL[name]()(low)
    torch.manual_seed(0)
    expected = SMALL[name]()(upcast)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert low.queries.grad.dtype == dtype and torch.isfinite(low.queries.grad.float()).all()


@pytest.mark.parametrize("name", list(SMALL))
def test_autocast_does_not_lower_the_loss_precision(name, make_input):
    """bf16 autocast would round matmul logits to ~3 digits; objectives compute them in float32."""
    batch = make_input(dtype=torch.float32, seed=4)
    torch.manual_seed(0)
    expected = SMALL[name]()(batch)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = SMALL[name]()(batch)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(SMALL))
def test_runs_on_cuda_under_bf16_autocast(name, make_input):
    cpu = make_input(dtype=torch.float32, num_items=50, lengths=(20, 7, 13))
    batch = ObjectiveInput(
        **{
            key: value.cuda().detach() if torch.is_tensor(value) else value
            for key, value in vars(cpu).items()
        }
        | dict(catalog=cpu.catalog.to("cuda"))
    )
    batch.queries.requires_grad_()
    batch.item_embeddings.requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = SMALL[name]()(batch)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(batch.queries.grad).all() and batch.item_embeddings.grad.abs().sum() > 0
    assert sampling.score_matrix(batch.queries, batch.item_embeddings).device.type == "cuda"
