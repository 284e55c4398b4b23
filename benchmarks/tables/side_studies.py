"""The report's section on ideas measured beside the tables, one row per idea and protocol.

Each study is its own benchmark with its own results file (``benchmarks/results/``); this reads
the files that exist and says what each idea bought where it was decided (validation AUC for an
A/B of our network, test ECE beside it) and whether the shipped defaults use it. "Kept" is read
from the code's defaults, not written here, so the report cannot claim what the code does not do.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmrisk.model.config import RiskModelConfig
from crmrisk.training.fit import FitConfig

__all__ = ["AB_HEADER", "PRIOR_HEADER", "SideStudies", "side_studies"]


@dataclasses.dataclass(frozen=True)
class _AB:
    """An A/B of our network: ``file``'s summary has ``{protocol: {arm: stats}}``."""

    idea: str
    file: str
    command: str
    arm: str  # the runs' field that names the arm
    kept: Callable[[], bool]


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


STUDIES = (
    _AB(
        "in-network head ensemble (TabM-mini, k heads per network)",
        "head_ensemble.json",
        "python -m benchmarks.head_ensemble",
        "head_members",
        lambda: _default(RiskModelConfig, "head_members") > 1,
    ),
    _AB(
        "EMA of the weights (decay 0.99)",
        "weight_averaging.json",
        "python -m benchmarks.weight_averaging",
        "ema_decay",
        lambda: _default(FitConfig, "ema_decay") > 0,
    ),
)


def _ab_rows(study: _AB, result: dict[str, Any]) -> list[list[str]]:
    rows = []
    runs = result.get("runs", [])
    for protocol, arms in result["summary"].items():
        base, other = list(arms)[:2]
        a, b = arms[base], arms[other]
        better = _seeds_better(runs, protocol, study.arm, base)
        rows.append(
            [
                study.idea,
                protocol,
                f"{base} -> {other}",
                f"{a['val_auc']['mean']:.4f} -> {b['val_auc']['mean']:.4f} "
                f"({b['val_auc']['mean'] - a['val_auc']['mean']:+.4f}; {better})",
                f"{a['test_auc']['mean']:.4f} -> {b['test_auc']['mean']:.4f}",
                f"{a['test_ece']['mean']:.3f} -> {b['test_ece']['mean']:.3f}",
                f"{a['train_seconds']['mean']:.0f} -> {b['train_seconds']['mean']:.0f}",
                "yes" if study.kept() else "no",
            ]
        )
    return rows


def _seeds_better(runs: list[dict[str, Any]], protocol: str, arm: str, base: str) -> str:
    """How many seeds the other arm beat the base arm on validation AUC."""
    by_seed: dict[int, dict[bool, float]] = {}
    for r in runs:
        if r["protocol"] == protocol:
            by_seed.setdefault(r["seed"], {})[str(r[arm]) == base] = r["val_auc"]
    pairs = [v for v in by_seed.values() if len(v) == 2]
    wins = sum(v[False] > v[True] for v in pairs)
    return f"{wins}/{len(pairs)} seeds better"


@dataclasses.dataclass(frozen=True)
class SideStudies:
    """What the results files hold: the commands that wrote them and one row per idea and
    protocol (``AB_HEADER``), and the prior-shift rows (``PRIOR_HEADER``)."""

    commands: list[str]
    ab_rows: list[list[str]]
    prior_rows: list[list[str]]


AB_HEADER = ["idea", "protocol", "arms", "val AUC", "test AUC", "test ECE", "train s", "kept"]
PRIOR_HEADER = ["protocol", "base rate train -> test", "ECE before", "EM", "adjusted count"]


def side_studies(results_dir: Path) -> SideStudies:
    """The studies whose results files are in ``results_dir``."""
    found = SideStudies([], [], [])
    for study in STUDIES:
        path = results_dir / study.file
        if path.exists():
            found.ab_rows.extend(_ab_rows(study, json.loads(path.read_text())))
            found.commands.append(f"`{study.command}` (`{study.file}`)")
    prior = results_dir / "prior_shift.json"
    if prior.exists():
        found.commands.append("`python -m benchmarks.prior_shift` (`prior_shift.json`)")
        for protocol, s in json.loads(prior.read_text())["summary"].items():
            found.prior_rows.append(
                [
                    protocol,
                    f"{s['train_rate']['mean']:.3f} -> {s['test_rate']['mean']:.3f}",
                    f"{s['ece_before']['mean']:.3f}",
                    f"{s['ece_em']['mean']:.3f}",
                    f"{s['ece_adjusted_count']['mean']:.3f}",
                ]
            )
    return found
