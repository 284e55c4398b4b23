"""The ``crmrisk`` command line: one Typer app, one module per command group.

Commands build ``Settings`` once (from the environment and ``.env``) and pass plain values on.
"""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.markup import escape  # a message is text: [brackets] in it are not markup
from typer.core import TyperGroup

from crmrisk.commands import (
    alerts,
    bench,
    dashboard,
    demo,
    models,
    replay,
    score,
    services,
    spec,
    state,
    topics,
    train,
    worker,
)
from crmrisk.errors import EXIT_USER_ERROR, describe

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """The root command: a user's mistake anywhere below becomes one clear error (exit 2)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors and exits: Typer prints and exits as usual
        except Exception as exc:
            message = describe(exc)
            if message is None or ctx.params.get("verbose"):
                raise  # a bug, or asked for: the traceback
            Console(stderr=True, soft_wrap=True).print(
                f"[red]Error:[/red] {escape(message)}", highlight=False, markup=True
            )
            raise typer.Exit(EXIT_USER_ERROR) from None


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
    cls=_Group,
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
spec.register(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log at DEBUG level; show the traceback of any error."
    ),
):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    app()
