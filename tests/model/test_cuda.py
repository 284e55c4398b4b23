"""The model on CUDA: same scores as on CPU, padding/batch invariance, autocast-safe masking.

Runs only where a CUDA device exists (the CPU suite covers the contracts everywhere else).
"""

from __future__ import annotations

import pytest
import torch

from crmrisk.lifecycle import load_checkpoint, save_checkpoint
from crmrisk.model import VARIANTS, build
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, random_batch, repad

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda(batch):
    return tuple(x.cuda() for x in batch)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@torch.inference_mode()
def test_cuda__matches_cpu_and_keeps_padding_and_batch_invariance(variant):
    model = build(variant, EVENT_DIM, PROFILE_DIM, seed=0).eval()
    batch = random_batch([6, 1, 3, 32], slots=32, seed=1)
    cpu = model(*batch)
    gpu_model = model.cuda()
    gpu = gpu_model(*_cuda(batch))
    torch.testing.assert_close(gpu.probability.cpu(), cpu.probability, atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu.attention.cpu(), cpu.attention, atol=1e-4, rtol=0)
    short = random_batch([6, 1, 4], slots=6, seed=2)
    a, b = gpu_model(*_cuda(short)), gpu_model(*_cuda(repad(short, 32)))
    torch.testing.assert_close(a.logit, b.logit, atol=1e-5, rtol=0)
    alone = gpu_model(*(x[1:2] for x in _cuda(short)))
    torch.testing.assert_close(alone.logit, a.logit[1:2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@torch.inference_mode()
def test_cuda__autocast_is_finite_and_masks_padding(variant, dtype):
    model = build(variant, EVENT_DIM, PROFILE_DIM, seed=0).cuda().eval()
    events, mask, profile = _cuda(random_batch([1, 5, 32, 0], slots=32, seed=3))
    reference = model(events, mask, profile)
    with torch.autocast("cuda", dtype=dtype):
        out = model(events, mask, profile)
    assert torch.isfinite(out.logit).all() and torch.isfinite(out.quantiles).all()
    assert torch.all(out.attention[~mask] == 0)
    torch.testing.assert_close(
        out.attention[:3].float().sum(1), torch.ones(3, device="cuda"), atol=1e-2, rtol=0
    )
    torch.testing.assert_close(out.probability.float(), reference.probability, atol=0.05, rtol=0)


def test_cuda__checkpoint_saved_from_gpu_loads_on_gpu(tmp_path):
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, seed=0).cuda().eval()
    save_checkpoint(tmp_path / "c", model, {"version": "gpu"})
    loaded, _ = load_checkpoint(tmp_path / "c", device="cuda")
    batch = _cuda(random_batch([3, 7], slots=7))
    with torch.inference_mode():
        assert torch.equal(loaded(*batch).logit, model(*batch).logit)
