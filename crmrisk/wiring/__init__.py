"""The composition root: library objects built from ``Settings``, for the entry points only.

``stream/``, ``state/`` and ``model/`` take plain values; these modules read the settings and
pass them on, so a default lives in ``crmrisk/settings/`` alone. Import the module you need
(``crmrisk.wiring.clients``, ``.models``, ``.worker``, ``.replay``): each pulls in only its own
clients.
"""

__all__: list[str] = []
