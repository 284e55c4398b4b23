"""The ``crmrisk`` command line: one Typer app, one module per command group.

Commands build ``Settings`` once (from the environment and ``.env``) and pass plain values on.
"""

from __future__ import annotations

import logging

import typer

from crmrisk.commands import (
    alerts,
    bench,
    dashboard,
    demo,
    models,
    replay,
    score,
    services,
    state,
    topics,
    train,
    worker,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="crmrisk",
    help=(
        "Streaming, real-time customer-risk scoring: customer events on Kafka -> per-customer "
        "sequences in Redis -> QRCNN-LSTM cross-attention model -> risk alerts on Kafka.\n\n"
        "Configuration comes from RISK_* environment variables (e.g. RISK_REDIS__URL, "
        "RISK_KAFKA__BOOTSTRAP_SERVERS; KAFKA_BOOTSTRAP_SERVERS and REDIS_URL also work) "
        "or a .env file."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
services.register(app)
topics.register(app)
worker.register(app)
replay.register(app)
score.register(app)
alerts.register(app)
demo.register(app)
dashboard.register(app)
train.register(app)
bench.register(app)
models.register(app)
state.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    app()
