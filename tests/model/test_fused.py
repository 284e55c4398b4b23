"""The fused members compute what the members compute, faster (model/fused.py)."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import DataDependentOutputException

from crmrisk.model import build
from crmrisk.model.fused import fuse
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, fake_cuda, random_batch


@pytest.mark.parametrize(
    ("members", "quantiles", "options"),
    [
        (3, (0.1, 0.5, 0.9), {}),
        (1, (), {}),
        (2, (0.2, 0.8), {"heads": 2, "region_pool": "max", "kernel_sizes": (1, 3)}),
        (3, (), {"region_pool": "avg", "regions": 3}),
        (3, (0.1, 0.5, 0.9), {"head_members": 4}),
        (1, (0.1, 0.9), {"head_members": 8, "heads": 2}),
    ],
)
def test_fuse__outputs_equal_the_members(members, quantiles, options):
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, quantiles, seed=4,
                  members=members, **options).eval()  # fmt: skip
    model.set_calibration(0.8, -0.3)
    model.set_interval_margin(0.2)
    fused = fuse(model)
    for lengths, slots in (([6, 1, 3, 6, 2], 6), ([1], 1), ([9, 4, 32], 32)):
        batch = random_batch(lengths, slots, seed=len(lengths))
        with torch.inference_mode():
            want, got = model(*batch), fused(*batch)
        torch.testing.assert_close(got.logit, want.logit, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.probability, want.probability, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got.attention, want.attention, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got.head_logits, want.head_logits, atol=1e-5, rtol=1e-5)
        if quantiles:
            torch.testing.assert_close(got.quantiles, want.quantiles, atol=1e-5, rtol=1e-5)
        else:
            assert got.quantiles is None


def test_fuse__no_profile_fields_uses_the_learned_constant():
    model = build("qrcnn-lstm-cross", EVENT_DIM, 0, (), seed=1, members=2).eval()
    batch = random_batch([3, 5], 5, profile_dim=0)
    with torch.inference_mode():
        torch.testing.assert_close(fuse(model)(*batch).logit, model(*batch).logit, atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


def test_fuse__other_families_are_left_alone():
    assert fuse(build("lstm", EVENT_DIM, PROFILE_DIM, ())) is None
    assert fuse(build("qrcnn-lstm-self", EVENT_DIM, PROFILE_DIM, ())) is None


@pytest.mark.parametrize(("members", "head_members"), [(1, 1), (3, 1), (2, 4)])
def test_fuse__differentiable_form_has_the_members_input_gradients(members, head_members):
    # What the reason codes integrate: the gradient of the served probability w.r.t. the inputs.
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, (0.1, 0.9), seed=members,
                  members=members, head_members=head_members).eval()  # fmt: skip
    model.set_calibration(1.4, -0.2)
    fused = fuse(model)
    events, mask, profile = random_batch([6, 1, 3, 6, 2], 6, seed=3)
    grads = []
    for f in (model, fused.differentiable):
        e, p = events.clone().requires_grad_(), profile.clone().requires_grad_()
        out = f(e, mask, p).probability
        grads.append((out.detach(), *torch.autograd.grad(out.sum(), (e, p))))
    (want, want_e, want_p), (got, got_e, got_p) = grads
    assert want_e.abs().max() > 1e-3  # otherwise the comparison says nothing
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_e, want_e, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(got_p, want_p, atol=1e-6, rtol=1e-4)
    assert not got_e[~mask].any()  # padded slots get no gradient
    # Serving builds no graph.
    assert not fused(events.requires_grad_(), mask, profile).probability.requires_grad


@pytest.mark.parametrize(
    ("members", "quantiles", "profile_dim"), [(3, (0.1, 0.9), PROFILE_DIM), (2, (), 0)]
)
def test_fuse__every_tensor_is_built_on_the_members_device(members, quantiles, profile_dim):
    # Issue 18: built on the CPU next to members on a GPU, the fused weights broke every GPU
    # forward ("mat2 is on cpu"). Fake CUDA tensors catch that on a machine without a GPU.
    model = build("qrcnn-lstm-cross", EVENT_DIM, profile_dim, quantiles, seed=0,
                  members=members).eval()  # fmt: skip
    with fake_cuda():
        fused = fuse(model.to("cuda"))
        tensors = {**dict(fused.named_parameters()), **dict(fused.named_buffers())}
        assert {name for name, t in tensors.items() if t.device.type != "cuda"} == set()
        events, mask, profile = (
            x.to("cuda") for x in random_batch([3, 1], 4, profile_dim=profile_dim)
        )
        out = fused(events, mask, profile, check_mask=False)
        assert out.probability.device.type == "cuda" and out.probability.shape == (2,)


def test_fuse__on_meta_builds_and_moves_with_to():
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, (0.1, 0.9), seed=0, members=2)
    fused = fuse(model.eval().to("meta"))
    assert {t.device.type for t in [*fused.parameters(), *fused.buffers()]} == {"meta"}
    fused = fuse(build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, (), seed=0).eval()).to("meta")
    # Every tensor the forward reads is a parameter or buffer: nothing stays behind on the CPU.
    assert [
        name
        for module in fused.modules()
        for name, value in vars(module).items()
        if isinstance(value, torch.Tensor) and value.device.type != "meta"
    ] == []
    out = fused(*(x.to("meta") for x in random_batch([3, 1], 4)), check_mask=False)
    assert out.probability.device.type == "meta"


def test_fuse__served_forward_never_waits_for_the_device():
    # A CUDA graph captures a forward only if nothing in it reads device data on the host:
    # fake tensors have no data, so a forward that runs on them never does.
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, (0.1, 0.5, 0.9), seed=0).eval()
    with fake_cuda():
        fused = fuse(model.to("cuda"))
        batch = [x.to("cuda") for x in random_batch([3, 1, 4], 4)]
        fused(*batch, check_mask=False)
        with pytest.raises(DataDependentOutputException):  # the right-padding check syncs
            fused(*batch)
