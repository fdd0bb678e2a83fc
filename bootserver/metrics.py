"""The one Prometheus registry every component registers its metrics on (served at /metrics)."""

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry()
