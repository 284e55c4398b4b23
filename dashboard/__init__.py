"""The live dashboard: what the running system already publishes, on one web page.

``live`` keeps the recent alerts and scores read from Kafka (pure, bounded); ``metrics`` reads a
worker's Prometheus series; ``app`` serves the page, a JSON API and a server-sent event stream
(Starlette, run by uvicorn). ``crmrisk dashboard`` and ``crmrisk demo`` start it.
"""

from dashboard.app import Dashboard, build_app
from dashboard.live import LiveView

__all__ = ["Dashboard", "LiveView", "build_app"]
