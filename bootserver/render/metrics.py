"""Prometheus metrics of Ignition rendering (on the shared registry, served at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from bootserver.metrics import REGISTRY

RENDERS = Counter("bootserver_ignition_renders_total", "Butane template renders by result (ok, error)",
                  ["result"], registry=REGISTRY)
RENDER_SECONDS = Histogram("bootserver_ignition_render_seconds", "Time to render a Butane template to Ignition",
                           buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=REGISTRY)
CACHE = Counter("bootserver_ignition_cache_total", "Rendered-config cache lookups by result (hit, miss)",
                ["result"], registry=REGISTRY)
CACHE_BYTES = Gauge("bootserver_ignition_cache_bytes", "Bytes of rendered configs held in the cache",
                    registry=REGISTRY)
ANSWERS = Counter("bootserver_answer_cache_total", "Cached matches and /ipxe scripts by result (hit, miss)",
                  ["result"], registry=REGISTRY)
