"""Contract suite over every registered variant (STYLE.md section 9)."""

from __future__ import annotations

import pytest
import torch

from crmrisk.lifecycle import load_checkpoint, save_checkpoint
from crmrisk.model import DEFAULT_VARIANT, VARIANTS, build, variants_in
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, random_batch

TOL = 1e-6
# Every variant, and the paper's network with an in-network ensemble of heads (``RiskHeads``).
HEADS = f"{DEFAULT_VARIANT}+8heads"
ALL = [*sorted(VARIANTS), HEADS]


def _build(variant: str, seed: int = 0):
    if variant == HEADS:
        return build(DEFAULT_VARIANT, EVENT_DIM, PROFILE_DIM, seed=seed, head_members=8)
    return build(variant, EVENT_DIM, PROFILE_DIM, seed=seed)


@pytest.mark.parametrize("variant", ALL)
def test_variant__forward_and_backward_reach_every_parameter(variant):
    model = _build(variant).train()
    events, mask, profile = random_batch([1, 4, 8], slots=8)
    out = model(events, mask, profile)
    assert out.logit.shape == (3,) and out.attention.shape == (3, 8)
    (out.logit.sum() + out.quantiles.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("variant", ALL)
@torch.inference_mode()
def test_variant__finite_on_one_event_and_on_a_full_window(variant):
    model = _build(variant).eval()
    out = model(*random_batch([1, 32], slots=32))
    for tensor in (out.logit, out.probability, out.quantiles, out.attention):
        assert torch.isfinite(tensor).all()
    assert torch.all(out.quantiles[:, 1:] >= out.quantiles[:, :-1])


@pytest.mark.parametrize("variant", ALL)
@torch.inference_mode()
def test_variant__attention_is_a_distribution_over_real_events(variant):
    events, mask, profile = random_batch([1, 3, 7], slots=7, seed=5)
    attention = _build(variant).eval()(events, mask, profile).attention
    torch.testing.assert_close(attention.sum(1), torch.ones(3), atol=1e-6, rtol=0)
    assert torch.all(attention[~mask] == 0) and torch.all(attention >= 0)


@pytest.mark.parametrize("variant", ALL)
@torch.inference_mode()
def test_variant__batched_equals_one_at_a_time_under_padding(variant):
    model = _build(variant).eval()
    batch = random_batch([6, 1, 3, 32], slots=32, seed=2)
    together = model(*batch)
    for i in range(4):
        events, mask, profile = (x[i : i + 1] for x in batch)
        length = int(mask.sum())  # alone: no padding at all
        alone = model(events[:, :length], mask[:, :length], profile)
        torch.testing.assert_close(alone.logit, together.logit[i : i + 1], atol=TOL, rtol=0)
        torch.testing.assert_close(alone.quantiles, together.quantiles[i : i + 1], atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", ALL)
def test_variant__same_seed_same_weights_other_seed_other_weights(variant):
    a, b, c = _build(variant, 1), _build(variant, 1), _build(variant, 2)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("variant", ALL)
@torch.inference_mode()
def test_variant__identical_scores_after_save_and_load(variant, tmp_path):
    model = _build(variant).eval()
    batch = random_batch([2, 5], slots=5)
    save_checkpoint(tmp_path / "ckpt", model, {"version": "test"})
    loaded, manifest = load_checkpoint(tmp_path / "ckpt")
    assert manifest["variant"] == variant.removesuffix("+8heads")
    assert loaded.config == model.config
    before, after = model(*batch), loaded(*batch)
    assert torch.equal(before.logit, after.logit)
    assert torch.equal(before.quantiles, after.quantiles)
    assert torch.equal(before.attention, after.attention)


def test_registry__default_variant_is_the_papers_model():
    config = _build(DEFAULT_VARIANT).config
    assert (config.frontend, config.recurrent, config.attention) == ("qrcnn", "lstm", "cross")
    assert len(config.kernel_sizes) == 4


def test_registry__ablation_groups_change_only_their_part():
    default = _build(DEFAULT_VARIANT).config
    for name in variants_in("frontend"):
        config = _build(name).config
        assert config.attention == default.attention and config.frontend != default.frontend
    for name in variants_in("attention"):
        config = _build(name).config
        assert config.frontend == default.frontend and config.attention != default.attention
    assert len(variants_in("frontend")) >= 3 and len(variants_in("attention")) >= 4


def test_build__default_model_is_under_one_million_parameters():
    model = build(DEFAULT_VARIANT, 64, 64)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_build__rejects_unknown_variant_and_unknown_override():
    with pytest.raises(ValueError, match="unknown variant"):
        build("transformer", EVENT_DIM, PROFILE_DIM)
    with pytest.raises(ValueError, match="hiden"):
        build(DEFAULT_VARIANT, EVENT_DIM, PROFILE_DIM, hiden=3)


def test_build__overrides_reach_the_config():
    model = build(DEFAULT_VARIANT, EVENT_DIM, PROFILE_DIM, hidden=16, kernel_sizes=[1, 3])
    assert model.config.hidden == 16 and model.config.kernel_sizes == (1, 3)
    assert all(m.recurrent.rnn.hidden_size == 16 for m in model.members)
