"""The CUDA path against the CPU path: attention kernels (SDPA, causal and masked), bf16 autocast, the
chunked softmax and a whole run. Skipped without a GPU (CI has none); benchmarks/gpu_suite.sh runs them."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from seqrec.losses.softmax import FusedSoftmaxCrossEntropy
from seqrec.model import SasRecBackbone
from seqrec.models.sasrec_keras_port import SasRecKerasPort
from seqrec.models.sasrec_pytorch_port import SasRecPyTorchPort
from seqrec.models.sasrec_tf2_port import SasRecTf2Port

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def exact_float32_products():
    """Runs set TF32 products ("high"); these comparisons need full float32 ones."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


LENGTHS = [200, 1, 57, 130, 64, 199, 3, 120]


def make_batch(num_items: int, seq_len: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor(LENGTHS)
    inputs = torch.randint(num_items, (len(LENGTHS), seq_len), generator=generator)
    return inputs.masked_fill(torch.arange(seq_len)[None, :] >= lengths[:, None], 0), lengths


VARIANTS = [
    (SasRecBackbone, {}),
    (SasRecBackbone, {"norm_first": True}),
    (SasRecTf2Port, {}),
    (SasRecPyTorchPort, {}),  # the left-padded window
    (SasRecKerasPort, {"query_projection": True, "item_projection": True}),
]


def make_model(variant=SasRecBackbone, **options) -> SasRecBackbone:
    torch.manual_seed(0)
    return variant(500, 64, 2, 2, 256, dropout=0.1, max_seq_len=200, **options).eval()


@pytest.mark.parametrize(("variant", "options"), VARIANTS)
def test_cuda_backbone_matches_cpu_in_float32_and_under_bf16(variant, options):
    model = make_model(variant, **options)
    inputs, lengths = make_batch(500)
    real = torch.arange(200)[None, :] < lengths[:, None]
    with torch.no_grad():
        expected = model(inputs, lengths)[real]
        gpu = model.cuda()
        hidden = gpu(inputs.cuda(), lengths.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low_precision = gpu(inputs.cuda(), lengths.cuda())
    torch.testing.assert_close(hidden[real.cuda()].cpu(), expected, rtol=1e-4, atol=1e-4)
    assert low_precision.dtype in (torch.bfloat16, torch.float32)
    torch.testing.assert_close(low_precision[real.cuda()].float().cpu(), expected, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(("variant", "options"), VARIANTS)
def test_cuda_last_hidden_matches_the_full_forward(variant, options):
    model = make_model(variant, **options).cuda()
    inputs, lengths = make_batch(500)
    inputs, lengths = inputs.cuda(), lengths.cuda()
    rows = torch.arange(len(lengths), device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(
            model.last_hidden(inputs, lengths),
            model(inputs, lengths)[rows, lengths - 1],
            rtol=1e-4,
            atol=1e-4,
        )


def test_cuda_training_gradients_match_cpu_without_dropout():
    model = SasRecBackbone(500, 64, 2, 2, 256, dropout=0.0, max_seq_len=200, layout="padded").train()
    inputs, lengths = make_batch(500)
    real = torch.arange(200)[None, :] < lengths[:, None]
    grads = {}
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        (model(inputs.to(device), lengths.to(device))[real.to(device)] ** 2).mean().backward()
        grads[device] = [p.grad.cpu() for p in model.parameters()]
    for ours, theirs in zip(grads["cuda"], grads["cpu"], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("chunk_rows", [1000, 7])
def test_cuda_chunked_softmax_matches_cross_entropy(chunk_rows):
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(300, 32, generator=generator, dtype=torch.float64).cuda().requires_grad_()
    items = torch.randn(5000, 32, generator=generator, dtype=torch.float64).cuda().requires_grad_()
    targets = torch.randint(5000, (300,), generator=generator).cuda()
    loss = FusedSoftmaxCrossEntropy.apply(queries, items, targets, chunk_rows)
    loss.backward()
    expected_queries = queries.detach().clone().requires_grad_()
    expected_items = items.detach().clone().requires_grad_()
    expected = F.cross_entropy(expected_queries @ expected_items.T, targets)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(queries.grad, expected_queries.grad)
    torch.testing.assert_close(items.grad, expected_items.grad)


@pytest.mark.parametrize("loss", ["bce", "softmax", "inbatch", "logq"])
def test_a_whole_run_on_cuda(tmp_path, loss):
    from helpers import SMOKE, run_in_process

    record = run_in_process([*SMOKE, f"loss={loss}", "trainer.device=cuda"], tmp_path)
    assert record["status"] == "completed" and record["device"].startswith("cuda")
    assert all(0.0 <= value <= 1.0 for value in record["metrics"]["test"].values())
    timings = json.loads((tmp_path / "run.json").read_text())["timings"]
    assert timings["peak_memory_bytes"] > 0
    # device time of the training steps, measured between CUDA events: at most the wall time
    assert 0 < timings["train_cuda_seconds"] <= timings["train_seconds"] + 0.01
    assert timings["train_cuda_us_per_event"] > 0
