"""The one ``Settings`` of a ``crmrisk`` invocation.

Read from the environment the first time a command asks, then kept on the root click context, so
every part of one invocation (a command and the helpers it calls) sees the same frozen object and
a command that needs no settings never fails on a bad ``RISK_*`` variable.
"""

from __future__ import annotations

import click

from crmrisk.settings import Settings

__all__ = ["current_settings"]

_KEY = "crmrisk.settings"


def current_settings() -> Settings:
    """This invocation's settings (built once); outside a command, a fresh read."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Settings()
    meta = ctx.find_root().meta
    if _KEY not in meta:
        meta[_KEY] = Settings()
    return meta[_KEY]
