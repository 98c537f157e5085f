"""Scraping ``/-/metrics`` in tests: the text parsed by prometheus-client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scraped:
    samples: list[tuple[str, dict[str, str], float]]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(
            v
            for n, lb, v in self.samples
            if n == name and all(lb.get(k) == want for k, want in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {lb[label] for n, lb, _ in self.samples if n == name and label in lb}

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [lb for n, lb, _ in self.samples if n == name]


def scrape(base_url: str) -> Scraped:
    r = httpx.get(f"{base_url}/-/metrics", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> Scraped:
    samples, types = [], {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.append((s.name, dict(s.labels), float(s.value)))
    return Scraped(samples, types)
