"""The live dashboard: what the running system already publishes, on one web page.

``live`` keeps the recent alerts and scores read from Kafka (pure, bounded); ``performance``
estimated vs realized performance and champion vs shadow from the scores, outcomes and shadow
scores (pure, bounded), ``performance_metrics`` the same as Prometheus series; ``metrics`` reads
a worker's Prometheus series; ``app`` holds the read side (Kafka, Redis, the registry),
``customer_view`` a customer's lookup and a version's training reference, ``routes`` serves the
page, a JSON API, a server-sent event stream and ``/metrics`` (Starlette, run by uvicorn).
``crmrisk dashboard`` and ``crmrisk demo`` start it.
"""

from crmrisk.dashboard.app import Dashboard
from crmrisk.dashboard.live import LiveView
from crmrisk.dashboard.performance import PerformanceView
from crmrisk.dashboard.performance_metrics import PerformanceMetrics
from crmrisk.dashboard.routes import build_app

__all__ = ["Dashboard", "LiveView", "PerformanceMetrics", "PerformanceView", "build_app"]
