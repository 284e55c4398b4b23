"""The members of a ``RiskModel`` fused for inference: the same outputs, fewer operations.

A model of ``K`` members runs ``K`` small networks one after the other. Every member reads the
same inputs, so most of their weights can be laid side by side: ``K`` linear maps over one input
become one map with the weights concatenated, ``K`` maps over their own inputs one
block-diagonal map, ``K`` cross-attentions one attention whose heads are the members' heads;
channels stay member-major (member 0's, then member 1's ...). The LSTMs stay one per member: a
block-diagonal LSTM multiplies ``K`` times more zeros than it saves in calls. Measured on 2
shared cores with one torch thread (``K = 3``, credit widths): 1.4x faster at 6 events per
customer, no faster at 32, where the LSTMs' arithmetic dominates.

``fuse(model)`` builds it from the model's current weights (fuse again after training), for the
default family (QRCNN -> LSTM -> cross-attention, ``model/network.py``, which this mirrors step by
step); for other variants it returns None and the
caller keeps the model. Outputs equal the model's up to float rounding (tests/model/test_fused.py).
``forward`` serves (no autograd); ``differentiable`` is the same function with autograd, which
the reason codes (``model/attribution.py``) integrate gradients through: fewer operations per
step on the alerting path too, and exactly the function that is served.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from crmrisk.model.network import RiskModel, RiskOutput, calibrate, non_crossing, region_pool
from crmrisk.model.sequences import causal_windows, last_state, masked_softmax, sequence_lengths

__all__ = ["FusedMembers", "fuse"]


class FusedMembers(nn.Module):
    """``forward(events, mask, profile) -> RiskOutput``, as the ``RiskModel`` it was built from."""

    def __init__(self, model: RiskModel) -> None:
        super().__init__()
        c = model.config
        members = list(model.members)
        k = len(members)
        self.k, self.config = k, c
        first = members[0]
        qrcnn = first.frontend
        self.widest, self.regions, self.pool = qrcnn.widest, qrcnn.regions, qrcnn.pool
        self.heads_per_member = first.attention.heads
        self.d_k = c.d_k
        self.quantile_count = len(c.quantiles)
        self.dtype = first.heads.logit.weight.dtype
        # Where the members are, the fused weights are: every tensor below is built there (or
        # from the members' own tensors) and registered, so ``.to(device)`` moves it too.
        like = {"dtype": self.dtype, "device": first.heads.logit.weight.device}

        def register(name: str, value: torch.Tensor) -> None:
            self.register_buffer(name, value.detach().clone().contiguous(), persistent=False)

        # QRCNN kernels: one product over the shared causal windows.
        weights, biases = zip(*(m.frontend.stacked_kernels() for m in members), strict=True)
        register("kernel_weight", torch.cat(weights))  # (K F, widest E)
        register("kernel_bias", torch.cat(biases))
        # Region summary: each member's projection reads its own pooled channels.
        f, r = c.channels, self.regions
        pools = 2 if self.pool == "maxavg" else 1
        s = c.summary_dim
        project = torch.zeros(k * s, r * pools * k * f, **like)
        for j, m in enumerate(members):
            w = m.frontend.project.weight  # (S, R * pools * F): index r, pool, channel
            for rr in range(r):
                for p in range(pools):
                    src = slice((rr * pools + p) * f, (rr * pools + p + 1) * f)
                    dst = (rr * pools + p) * k * f + j * f
                    project[j * s : (j + 1) * s, dst : dst + f] = w[:, src]
        register("project_weight", project)
        register("project_bias", torch.cat([m.frontend.project.bias for m in members]))
        # LSTMs stay one per member: a block-diagonal LSTM multiplies K times more zeros than
        # it saves in calls (measured: slower at every batch size here).
        self.lstms = nn.ModuleList(m.recurrent.rnn for m in members)
        self.features = c.channels
        # Profile embedding (the attention's query source): one product over the shared profile.
        self.constant_profile = first.profile.linear is None
        if self.constant_profile:
            register("profile_constant", torch.cat([m.profile.constant for m in members]))
        else:
            register("profile_weight", torch.cat([m.profile.linear.weight for m in members]))
            register("profile_bias", torch.cat([m.profile.linear.bias for m in members]))
        # Cross-attention: the members' heads side by side.
        d = c.d_k
        register("q_weight", torch.block_diag(*[m.attention.w_q.weight for m in members]))
        register("q_bias", torch.cat([m.attention.w_q.bias for m in members]))
        register("k_weight", torch.block_diag(*[m.attention.w_kv.weight[:d] for m in members]))
        register("k_bias", torch.cat([m.attention.w_kv.bias[:d] for m in members]))
        register("v_weight", torch.block_diag(*[m.attention.w_kv.weight[d:] for m in members]))
        register("v_bias", torch.cat([m.attention.w_kv.bias[d:] for m in members]))
        # Heads: each member's hidden layer (its in-network heads side by side, ``stacked``)
        # reads its own [last state, context, summary, query].
        parts = (c.hidden, d, s, c.profile_hidden)
        width, hidden = sum(parts), c.head_members * c.head_hidden
        stacked = [m.heads.stacked() for m in members]
        head = torch.zeros(k * hidden, k * width, **like)
        for j, w in enumerate(stacked):
            src, dst = 0, 0
            for size in parts:
                head[j * hidden : (j + 1) * hidden, dst + j * size : dst + (j + 1) * size] = w[
                    "hidden_weight"
                ][:, src : src + size]
                src, dst = src + size, dst + k * size
        register("hidden_weight", head)
        register("hidden_bias", torch.cat([w["hidden_bias"] for w in stacked]))
        register("logit_weight", torch.block_diag(*[w["logit_weight"] for w in stacked]))
        register("logit_bias", torch.cat([w["logit_bias"] for w in stacked]))
        if self.quantile_count:
            register("quantile_weight", torch.block_diag(*[w["quantile_weight"] for w in stacked]))
            register("quantile_bias", torch.cat([w["quantile_bias"] for w in stacked]))
        register("calibration", model.calibration)
        register("interval_margin", model.interval_margin)

    def forward(
        self,
        events: torch.Tensor,
        mask: torch.Tensor,
        profile: torch.Tensor,
        *,
        check_mask: bool = True,
    ) -> RiskOutput:
        """Serving: no autograd graph (the LSTMs' weights require grad; they need no graph).

        ``check_mask=False`` skips the right-padding check, the forward's one host sync, for a
        caller that checked the mask on the host: the rest never waits for the device, so a
        CUDA graph can capture it (``model/serving.py``).
        """
        with torch.no_grad():
            return self.differentiable(events, mask, profile, check_mask=check_mask)

    def differentiable(
        self,
        events: torch.Tensor,
        mask: torch.Tensor,
        profile: torch.Tensor,
        *,
        check_mask: bool = True,
    ) -> RiskOutput:
        """The same outputs, with autograd: gradients with respect to the inputs (attribution).

        The fused weights are constant buffers, so only the inputs and the LSTMs' weights
        take part in a backward pass; ask for the inputs' gradients alone.
        """
        k = self.k
        mask = mask.to(torch.bool)
        lengths = sequence_lengths(mask, check=check_mask)
        events = torch.where(mask[..., None], events.to(self.dtype), 0.0)
        windows = causal_windows(events, self.widest)
        features = F.relu(F.linear(windows, self.kernel_weight, self.kernel_bias))  # (B,T,KF)
        pooled = region_pool(features, lengths, self.regions, self.pool)
        summary = F.relu(F.linear(pooled.flatten(1), self.project_weight, self.project_bias))
        f = self.features
        states = torch.cat(
            [lstm(features[..., j * f : (j + 1) * f])[0] for j, lstm in enumerate(self.lstms)], -1
        )  # (B, T, K H)
        if self.constant_profile:
            query = torch.relu(self.profile_constant).expand(events.shape[0], -1)
        else:
            query = torch.relu(F.linear(profile.to(self.dtype), self.profile_weight,
                                        self.profile_bias))  # fmt: skip
        heads = k * self.heads_per_member
        q = F.linear(query, self.q_weight, self.q_bias).unflatten(-1, (heads, -1))  # (B, h, d)
        keys = F.linear(states, self.k_weight, self.k_bias).unflatten(-1, (heads, -1))
        values = F.linear(states, self.v_weight, self.v_bias).unflatten(-1, (heads, -1))
        scores = torch.einsum("bhd,bthd->bht", q, keys) / math.sqrt(q.shape[-1])
        attended = masked_softmax(scores, mask[:, None, :])  # (B, K h, T)
        context = torch.einsum("bht,bthd->bhd", attended, values).flatten(1)  # (B, K d)
        representation = torch.cat([last_state(states, lengths), context, summary, query], -1)
        hidden = F.gelu(F.linear(representation, self.hidden_weight, self.hidden_bias))
        # Every member has the same number of heads, so the mean over all K k heads is the
        # members' mean of their heads' means, as ``RiskModel`` computes it.
        head_logits = F.linear(hidden, self.logit_weight, self.logit_bias)  # (B, K k)
        logit = head_logits.mean(dim=1)  # (B,)
        quantiles = None
        if self.quantile_count:
            raw = F.linear(hidden, self.quantile_weight, self.quantile_bias)
            raw = raw.unflatten(-1, (-1, self.quantile_count))  # (B, K k, Q)
            quantiles = non_crossing(raw).mean(dim=1)
        attention = attended.mean(dim=1)
        margin = self.interval_margin
        return calibrate(logit, quantiles, attention, self.calibration, margin, head_logits)


def fuse(model: RiskModel) -> FusedMembers | None:
    """``model``'s members fused (see the module docstring), or None when not supported."""
    c = model.config
    if (c.frontend, c.recurrent, c.attention) != ("qrcnn", "lstm", "cross"):
        return None
    return FusedMembers(model).eval()
