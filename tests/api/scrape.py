"""Read a /metrics answer the way Prometheus does, with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def value(exposition: str, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly these labels, or None when there is none."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def count(exposition: str, name: str, **labels: str) -> float:
    """A counter's value; a series not yet exposed counts 0."""
    found = value(exposition, name, **labels)
    return 0.0 if found is None else found
