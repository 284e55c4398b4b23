"""Loading a 1M-row event log through an ``EventLogSpec``: time and peak memory per reader.

A generated order log (``training/datasets/synthetic_log.py``, about 50 lines per customer) is
written as CSV and Parquet; each variant runs in a fresh process (so its peak RSS is its own):
read the file (pandas' C parser, pandas with the pyarrow parser, or Parquet), aggregate the
rows into events (``event_log``), and build the records at the spec's three cutoffs
(``build_records``). Run::

    .venv/bin/python -m benchmarks.spec_load --customers 20000 \
        --out benchmarks/results/spec_load.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("csv_pandas_c", "csv_pandas_pyarrow", "parquet_pyarrow")


def _measure(variant: str, directory: Path) -> dict[str, Any]:
    """One variant in this process: stage timings (s) and peak RSS (MiB)."""
    import pandas as pd

    from crmrisk.training.datasets.cutoff_records import build_records
    from crmrisk.training.datasets.event_log import event_log
    from crmrisk.training.datasets.event_log_spec import EventLogSpec
    from crmrisk.training.datasets.synthetic_log import SPEC

    spec = EventLogSpec.model_validate(SPEC)
    dtype = dict.fromkeys(spec.text_columns, str)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    if variant == "csv_pandas_c":
        frame = pd.read_csv(directory / "orders.csv", dtype=dtype, low_memory=False)
    elif variant == "csv_pandas_pyarrow":
        frame = pd.read_csv(directory / "orders.csv", dtype=dtype, engine="pyarrow")
    else:
        frame = pd.read_parquet(directory / "orders.parquet")
    read = time.perf_counter()
    data = event_log(spec, frame)
    del frame
    built = time.perf_counter()
    records = [
        len(build_records(spec, data, str(c))) for c in [*spec.cutoffs.train, spec.cutoffs.test]
    ]
    done = time.perf_counter()
    return {
        "variant": variant,
        "rows": data.rows,
        "events": len(data.table),
        "records_per_cutoff": records,
        "read_s": round(read - started, 3),
        "events_s": round(built - read, 3),
        "records_s": round(done - built, 3),
        "total_s": round(done - started, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mib": round(base, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/spec_load.json"))
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # the child process
        print(json.dumps(_measure(args.variant, args.dir)))
        return

    from crmrisk.training.datasets.synthetic_log import order_log

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        lines = order_log(args.customers, seed=args.seed)
        lines.to_csv(directory / "orders.csv", index=False)
        lines.to_parquet(directory / "orders.parquet")
        sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
        rows = len(lines)
        del lines
        results = []
        for variant in VARIANTS:
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.spec_load", "--variant", variant, "--dir", tmp],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    best = min(results, key=lambda r: r["total_s"])
    out = {
        "benchmark": "spec_load",
        "command": f"python -m benchmarks.spec_load --customers {args.customers}",
        "rows": rows,
        "customers": args.customers,
        "file_bytes": sizes,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": results,
        "fastest": best["variant"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
