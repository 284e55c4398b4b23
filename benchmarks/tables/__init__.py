"""The paper's Tables 1-4 (``crmrisk bench tables``): baselines, efficiency, the runs, the report.

Reproduction code, not the runtime: it needs the ``bench`` extra (LightGBM, Optuna, matplotlib),
which the serving image does not install.
"""
