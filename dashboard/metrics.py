"""A worker's Prometheus series, read as the dashboard needs them: rates, percentiles, lag.

The text exposition format is parsed with prometheus_client's parser; percentiles come from
the histogram buckets (the upper bound of the bucket holding the quantile, as Prometheus'
``histogram_quantile`` would interpolate within it).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["from_registry", "from_url", "summarise"]


def from_url(url: str, token: str | None, timeout_s: float = 2.0) -> Callable[[], str | None]:
    """A reader of a worker's ``/metrics`` page (None when it does not answer), sending
    ``token`` as a bearer token when the page needs one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def read() -> str | None:
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.read().decode()
        except OSError:
            return None

    return read


def from_registry(registry) -> Callable[[], str]:
    """A reader of an in-process worker's registry (the demo's)."""
    from prometheus_client import generate_latest

    return lambda: generate_latest(registry).decode()


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """``histogram_quantile``: linear within the bucket holding the q-th observation."""
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside else 0.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def summarise(text: str | None) -> dict:
    """Latency percentiles (ms), consumer lag, counts, and the field contract's counts per
    domain and name (``data_quality``); empty when there is no worker to read.

    >>> page = '''# TYPE crmrisk_event_to_score_ms histogram
    ... crmrisk_event_to_score_ms_bucket{le="10.0"} 50
    ... crmrisk_event_to_score_ms_bucket{le="20.0"} 100
    ... crmrisk_event_to_score_ms_bucket{le="+Inf"} 100
    ... crmrisk_event_to_score_ms_count 100
    ... crmrisk_event_to_score_ms_sum 1000
    ... '''
    >>> summarise(page)["latency_ms"]
    {'p50': 10.0, 'p95': 19.0, 'p99': 19.8}
    """
    if not text:
        return {}
    out: dict = {"counts": {}}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram" and family.name.endswith("_ms"):
            buckets = sorted(
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name.endswith("_bucket")
            )
            if "score" in family.name and "latency_ms" not in out:
                out["latency_ms"] = {
                    f"p{round(q * 100)}": _round(_quantile(buckets, q)) for q in (0.5, 0.95, 0.99)
                }
        elif family.name == "crmrisk_consumer_lag":
            out["consumer_lag"] = sum(s.value for s in family.samples)
        elif family.type == "counter":
            out["counts"][family.name] = sum(
                s.value for s in family.samples if s.name.endswith("_total")
            )
            if family.name in _DATA_QUALITY:
                out.setdefault("data_quality", []).extend(
                    {"series": _DATA_QUALITY[family.name], **s.labels, "count": s.value}
                    for s in family.samples
                    if s.name.endswith("_total")
                )
    return out


# The field contract's counters (stream/field_contract.py), per domain and name.
_DATA_QUALITY = {
    "crmrisk_coerced_fields": "coerced",
    "crmrisk_unknown_fields": "unknown_field",
    "crmrisk_unknown_kinds": "unknown_kind",
}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
