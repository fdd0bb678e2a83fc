"""The proxy's counters: Prometheus counters with one label, kept as plain integers.

prometheus_client's Counter takes a lock on every `inc()`, and the proxy counts every datagram it
receives (a few percent of an answer's CPU). These count in a dict on the loop thread and hand
Prometheus the totals when it collects: the same `<name>_total{label}` samples.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily

from bootserver.metrics import REGISTRY


class Counts:
    def __init__(self, name: str, documentation: str, label: str, *, registry=REGISTRY) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.values: dict[str, int] = {}  # label value -> count
        registry.register(self)

    def inc(self, value: str) -> None:
        values = self.values
        values[value] = values.get(value, 0) + 1

    def get(self, value: str) -> int:
        return self.values.get(value, 0)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in list(self.values.items()):
            family.add_metric([value], count)
        yield family
