"""crmrisk: the streaming customer-risk scorer, installed under one name.

The application (settings, the ``crmrisk`` command line and its wiring) lives here; the design
card's folders install beneath it through links: ``crmrisk.stream`` (events in, alerts out),
``crmrisk.state`` (per-customer windows in Redis), ``crmrisk.model`` (the network),
``crmrisk.lifecycle`` (model versions and the live pointer), ``crmrisk.training``,
``crmrisk.dashboard`` and ``crmrisk.deploy`` (local services).
"""
