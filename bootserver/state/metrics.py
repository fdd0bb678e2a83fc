"""Prometheus metrics of the state store (on the shared registry, served at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from bootserver.metrics import REGISTRY

EVENTS_COMMITTED = Counter("bootserver_state_events_committed_total", "Timeline events committed",
                           ["backend"], registry=REGISTRY)
COMMIT_BATCH = Histogram("bootserver_state_commit_batch_writes", "Writes that shared one group commit",
                         ["backend"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=REGISTRY)
COMMIT_SECONDS = Histogram("bootserver_state_commit_seconds", "Time one group commit took", ["backend"],
                           registry=REGISTRY)
EVENTS_BUFFERED = Gauge("bootserver_state_events_buffered",
                        "Events waiting in memory for an unreachable store", registry=REGISTRY)
EVENTS_DROPPED = Counter("bootserver_state_events_dropped_total",
                         "Events dropped because the outage buffer was full", registry=REGISTRY)
