"""The paper's Tables 1-4 (``python -m benchmarks.tables``): baselines, efficiency, runs, report.

Reproduction code, not the runtime: it needs the ``bench`` extra (LightGBM, Optuna, matplotlib),
which the serving image does not install.
"""
