"""crmrisk: the application package (settings and the ``crmrisk`` command line)."""

from crmrisk.settings import Settings

__all__ = ["Settings"]
