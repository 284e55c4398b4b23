"""Reason codes: integrated gradients of the probability, summed per field, in the user's terms.

Attention weights say where a model looked, not what moved its score. Integrated gradients
(Sundararajan et al. 2017, via Captum) attribute ``f(x) - f(x')`` to the inputs, where ``f`` is
the *probability* (the calibrated, member-averaged output the stream publishes, not the logit),
so the contributions are in probability units and sum to ``score - baseline score`` up to the
integration error (Captum's convergence delta; the completeness test bounds it).

The baseline ``x'`` is "a typical customer with the same history": every event slot and the
profile keep their shape (same number of events, same kinds, same mask), and each field that is
present is replaced by its training-typical encoding: a number by the encoding of its training
median (value column 0, its bins at the median), a category by the most frequent training
category (vocabularies are sorted by training frequency). A field that is missing in the input
is missing in the baseline too, so it gets no credit: reasons speak about values the customer
has, and a kind that never carries a field is never blamed for it. An absent profile (zeros)
is kept as is.

The encoder spreads one field over several columns (a numeric block is value, missing flag and
piecewise-linear bins; a field may also be encoded twice, numerically and as categories), so
column attributions are summed per (event slot, field) and per profile field; the value shown is
decoded from the encoded vector (exact for categories; numbers to float32 precision, and a value
clipped to the training range shows as ``≥``/``≤`` that bound).

Cost (the alerting path pays it; benchmarks/reasons.py): the gradients run through the fused
members (``model/fused.py``, the served function itself, about a third of the operations per
step) of a copy whose weights are frozen (no weight gradients), in one backward pass of the
summed outputs per chunk; ``f(x)`` and ``f(x')`` come from one more forward pass, and the
convergence delta from them. 16 Gauss-Legendre steps by default: on the credit model the
benchmark's accuracy table compares them with 256.

On CUDA the cuDNN RNN backward only runs in training mode; attribution therefore runs with cuDNN
disabled (native LSTM kernels, same eval-mode outputs) and in float32, not under the serving
autocast.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients

from crmrisk.model.features import FeatureEncoder
from crmrisk.model.features.columns import CategoricalColumn, Column, NumericColumn, bins_one
from crmrisk.model.fused import fuse
from crmrisk.model.network import RiskModel
from crmrisk.model.sequences import check_right_padded

__all__ = ["Attribution", "Explainer", "Explanation", "FieldLayout"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """One field's signed contribution to the probability, at one event slot or the profile."""

    field: str
    value: str  # decoded from the encoding: "2", "20,000", "≥ 500,000", "university", "missing"
    position: int | None  # the slot in the (oldest first) window; None for the profile
    contribution: float  # probability units


@dataclass(frozen=True, slots=True)
class Explanation:
    probability: float  # f(x), the attributed model's probability
    baseline_probability: float  # f(baseline): a typical customer with the same history
    total: float  # the sum of every attribution (= probability - baseline up to ``delta``)
    delta: float  # total - (probability - baseline_probability): the integration error
    reasons: list[Attribution]  # the largest |contribution| first, zeros left out


def format_number(x: float) -> str:
    """A decoded number as a reader would write it.

    >>> [format_number(v) for v in (20000.4, 2.0, 0.35123, -1.0, 123.4)]
    ['20,000', '2', '0.351', '-1', '123']
    """
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    text = f"{x:.3g}"
    return "0" if text == "-0" else text


class _Block:
    """Where one encoded column of a field lives in a vector, and how to read it back."""

    def __init__(self, column: Column, offset: int) -> None:
        self.column, self.offset, self.width = column, offset, column.width
        self.span = slice(offset, offset + column.width)
        self.typical = np.zeros(column.width, dtype=np.float32)
        if isinstance(column, NumericColumn):
            # The training median: scaled value 0, bins of the median, not missing.
            self.typical[2:] = bins_one(column.center, column.edges)
        elif column.vocabulary:
            self.typical[0] = 1.0  # the most frequent training category
        else:  # no training vocabulary: nothing typical to compare with, keep the input
            self.typical = None

    def present(self, block: np.ndarray) -> np.ndarray:
        """(..., width) -> (...) bool: whether the field has a value in this encoding."""
        if isinstance(self.column, NumericColumn):
            return block[..., 1] == 0
        return (block != 0).any(axis=-1)

    def decode(self, block: np.ndarray) -> str | None:
        """The value one block encodes (None when missing)."""
        c = self.column
        if not self.present(block):
            return None
        if isinstance(c, CategoricalColumn):
            i = int(np.argmax(block))
            return c.vocabulary[i] if i < len(c.vocabulary) else "other"
        t = float(block[0]) * c.scale + c.center
        bound = ""
        if c.edges:
            # At a bound of the training range the value was clipped there: say so, and read
            # the bound itself rather than its float32 round trip.
            tol = 1e-5 * max(1.0, abs(c.edges[-1]), abs(c.edges[0]))
            if len(c.edges) > 1 and t >= c.edges[-1] - tol:
                bound, t = "≥ ", c.edges[-1]
            elif t <= c.edges[0] + tol:
                bound, t = ("≤ " if len(c.edges) > 1 else ""), c.edges[0]
        if c.transform == "signed_log1p":
            t = math.copysign(math.expm1(abs(t)), t)
        return bound + format_number(t)


class FieldLayout:
    """An encoder's columns grouped by field: the baseline, per-field sums and decoded values."""

    def __init__(self, encoder: FeatureEncoder) -> None:
        self.encoder = encoder
        self.event_fields, self._event_blocks = self._group(
            encoder.event_columns, len(encoder.kinds) + 1
        )
        self.profile_fields, self._profile_blocks = self._group(encoder.profile_columns, 0)
        self._event_sum = self._summing(self._event_blocks, encoder.event_dim)  # (E, Fe)
        self._profile_sum = self._summing(self._profile_blocks, encoder.profile_dim)  # (P, Fp)

    @staticmethod
    def _group(columns, start: int) -> tuple[list[str], list[list[_Block]]]:
        names: list[str] = []
        blocks: list[list[_Block]] = []
        offset = start
        for column in columns:
            if column.name not in names:
                names.append(column.name)
                blocks.append([])
            blocks[names.index(column.name)].append(_Block(column, offset))
            offset += column.width
        return names, blocks

    @staticmethod
    def _summing(blocks: list[list[_Block]], dim: int) -> np.ndarray:
        """A 0/1 matrix (dim, fields): column attributions @ it = per-field attributions."""
        out = np.zeros((dim, len(blocks)), dtype=np.float64)
        for f, group in enumerate(blocks):
            for block in group:
                out[block.span, f] = 1.0
        return out

    def baseline(
        self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray, has_profile: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The typical customer with the same history (module docstring), same shapes."""
        base_events = events.copy()
        for group in self._event_blocks:
            for block in group:
                if block.typical is None:
                    continue
                part = events[..., block.span]  # (B, T, w)
                use = block.present(part) & mask  # (B, T)
                base_events[..., block.span] = np.where(use[..., None], block.typical, part)
        base_profile = profile.copy()
        for group in self._profile_blocks:
            for block in group:
                if block.typical is None:
                    continue
                part = profile[:, block.span]
                use = block.present(part) & has_profile
                base_profile[:, block.span] = np.where(use[:, None], block.typical, part)
        return base_events, base_profile

    def per_field(
        self, event_attr: np.ndarray, profile_attr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column attributions (B, T, E), (B, P) -> field attributions (B, T, Fe), (B, Fp)."""
        return event_attr @ self._event_sum, profile_attr @ self._profile_sum

    def decode_event(self, vector: np.ndarray, field: int) -> str:
        return _decode(self._event_blocks[field], vector)

    def decode_profile(self, vector: np.ndarray, field: int) -> str:
        return _decode(self._profile_blocks[field], vector)


def _decode(group: list[_Block], vector: np.ndarray) -> str:
    # A category block reads exactly; prefer it over the float32 round trip of a number.
    ordered = sorted(group, key=lambda b: not isinstance(b.column, CategoricalColumn))
    for block in ordered:
        value = block.decode(vector[block.span])
        if value is not None:
            return value
    return "missing"


class _Probability:
    """The model's probability as a function of (events, profile) for Captum; mask is fixed.

    ``options`` go to every call of ``network`` (the fused form takes ``check_mask=False``:
    the mask was checked on the host once, not on the device once per chunk).
    """

    def __init__(self, network, profile_dim: int, **options) -> None:
        self.network, self.profile_dim, self.options = network, profile_dim, options

    def __call__(self, events, *rest):
        if self.profile_dim:
            profile, mask = rest
        else:
            (mask,) = rest
            profile = events.new_zeros(events.shape[0], 0)
        return self.network(events, mask, profile, **self.options).probability


def _summed_gradients(forward_fn, inputs, target_ind=None, additional_forward_args=None):
    """Captum's ``compute_gradients`` as one backward pass of the summed probabilities.

    The gradients are the same (autograd sums over outputs either way: Captum asks for the
    gradient of each of the ``rows x steps`` outputs with a ones seed, which adds up to the
    gradient of their sum), without unbinding thousands of scalar outputs in Python first.
    """
    if target_ind is not None:
        raise ValueError("the probability has one output per row: no target")
    extra = additional_forward_args
    extra = () if extra is None else extra if isinstance(extra, tuple) else (extra,)
    with torch.enable_grad():
        return torch.autograd.grad(forward_fn(*inputs, *extra).sum(), inputs)


class Explainer:
    """Reason codes for batches of customers scored by ``model``.

    Parameters
    ----------
    model
        A differentiable ``forward(events, mask, profile) -> RiskOutput`` module, e.g. the
        ``RiskModel`` a scorer serves. Where it fuses (``model/fused.py``), gradients run through
        the fused members' ``differentiable`` form: the function that is served, in about a
        third of the operations per step (benchmarks/reasons.py measures it).
    encoder
        The model's feature encoder (names the fields, decodes the values).
    steps
        Integration steps (Gauss-Legendre); more steps, smaller convergence delta.
    top
        Reasons kept per customer.
    chunk
        Customers per forward/backward pass (each pass holds ``chunk x steps`` rows).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        encoder: FeatureEncoder,
        *,
        steps: int,
        top: int,
        device: torch.device,
        chunk: int = 64,
    ) -> None:
        if steps < 1 or top < 0 or chunk < 1:
            raise ValueError(f"need steps >= 1, top >= 0, chunk >= 1; got {steps}, {top}, {chunk}")
        self.model = model.to(device).eval()
        self.layout = FieldLayout(encoder)
        self.steps, self.top, self.device, self.chunk = steps, top, device, chunk
        # Attribution's own copy with the weights frozen: gradients flow to the inputs only
        # (the LSTM backward skips its weight gradients), and the served model is untouched.
        frozen = copy.deepcopy(self.model).requires_grad_(False)
        fused = fuse(frozen) if isinstance(frozen, RiskModel) else None
        options = {"check_mask": False} if fused is not None else {}
        self._probability = _Probability(
            fused.differentiable if fused is not None else frozen, encoder.profile_dim, **options
        )
        self._ig = IntegratedGradients(self._probability)
        self._ig.gradient_func = _summed_gradients

    def attribute(
        self, events: np.ndarray, mask: np.ndarray, profile: np.ndarray, has_profile: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Column attributions ``(B, T, E)``, ``(B, P)``, f(x) ``(B,)``, f(x') ``(B,)``, delta."""
        check_right_padded(mask)  # once, on the host: the device never syncs for it
        base_events, base_profile = self.layout.baseline(events, mask, profile, has_profile)
        to = self.device
        e, be, p, bp = (
            torch.from_numpy(a).to(to) for a in (events, base_events, profile, base_profile)
        )
        m = torch.from_numpy(mask).to(to)
        event_attr, profile_attr, probs = self.integrate(e, be, p, bp, m)
        n = events.shape[0]
        event_attr = event_attr.double().cpu().numpy()
        profile_attr = (
            profile_attr.double().cpu().numpy() if profile_attr is not None else np.zeros((n, 0))
        )
        probs = probs.double().cpu().numpy()
        prob, base = probs[:n], probs[n:]
        total = event_attr.sum(axis=(1, 2)) + profile_attr.sum(axis=1)
        return event_attr, profile_attr, prob, base, total - (prob - base)

    def integrate(
        self,
        events: torch.Tensor,
        base_events: torch.Tensor,
        profile: torch.Tensor,
        base_profile: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``attribute`` on the device: event and profile attributions (None without profile
        fields) and f(x) then f(x') ``(2 B,)``, where the inputs are (the explainer's device);
        the mask must be right-padded (``attribute`` checks it)."""
        e, be, p, bp, m = events, base_events, profile, base_profile, mask
        # cuDNN's RNN backward refuses eval mode; the native kernels give the same outputs.
        with torch.backends.cudnn.flags(enabled=False), torch.enable_grad():
            if self.layout.encoder.profile_dim:
                inputs, baselines, extra = (e, p), (be, bp), (m,)
            else:
                inputs, baselines, extra = (e,), (be,), (m,)
            attributions = self._ig.attribute(
                inputs,
                baselines=baselines,
                additional_forward_args=extra,
                n_steps=self.steps,
                internal_batch_size=self.steps * self.chunk,
            )
        # f(x) and f(x') in one pass; the convergence delta from it (Captum's own would run
        # two more forward passes for the same two numbers).
        rest = (torch.cat([p, bp]), torch.cat([m, m])) if len(inputs) > 1 else (torch.cat([m, m]),)
        with torch.no_grad():
            both = self._probability(torch.cat([e, be]), *rest)
        profile_attr = attributions[1].detach() if len(attributions) > 1 else None
        return attributions[0].detach(), profile_attr, both

    def explain(
        self,
        events: np.ndarray,
        mask: np.ndarray,
        profile: np.ndarray,
        has_profile: np.ndarray | None = None,
    ) -> list[Explanation]:
        """One ``Explanation`` per row of the padded batch (``events (B, T, E)`` ...)."""
        if has_profile is None:
            has_profile = np.ones(events.shape[0], dtype=bool)
        event_attr, profile_attr, prob, base, delta = self.attribute(
            events, mask, profile, has_profile
        )
        by_event, by_profile = self.layout.per_field(event_attr, profile_attr)  # (B,T,F), (B,Fp)
        by_event = np.where(mask[..., None], by_event, 0.0)
        b, t, fe = by_event.shape
        flat = np.concatenate([by_event.reshape(b, t * fe), by_profile], axis=1)
        out = []
        for i in range(b):
            ranked = np.argsort(-np.abs(flat[i]), kind="stable")[: self.top]
            reasons = []
            for j in ranked.tolist():
                if flat[i, j] == 0:
                    break
                if j < t * fe:
                    slot, field = divmod(j, fe)
                    name = self.layout.event_fields[field]
                    value = self.layout.decode_event(events[i, slot], field)
                    reasons.append(Attribution(name, value, slot, float(flat[i, j])))
                else:
                    field = j - t * fe
                    name = self.layout.profile_fields[field]
                    value = self.layout.decode_profile(profile[i], field)
                    reasons.append(Attribution(name, value, None, float(flat[i, j])))
            out.append(
                Explanation(
                    probability=float(prob[i]),
                    baseline_probability=float(base[i]),
                    total=float(flat[i].sum()),
                    delta=float(delta[i]),
                    reasons=reasons,
                )
            )
        return out
