"""The one Prometheus registry every component defines its metrics on; `/metrics` exposes it."""

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry()
