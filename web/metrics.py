"""Prometheus metrics: HTTP latency by route template, and the live relay's figures.

No label ever carries a user, show or order id: cardinality stays fixed however
many shows run. Other packages keep their own counters in their `metrics` modules
on the same default registry; this module only serves them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_LATENCY = Histogram(
    "livemall_http_request_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Orders (POST /api/orders), counted by web/api_orders.py around OrderDesk.place.
ORDERS_ACCEPTED = Counter("livemall_orders_accepted", "Orders accepted (stock reserved)")
ORDERS_SOLD_OUT = Counter("livemall_orders_sold_out", "Orders refused because the stock ran out")
ORDERS_REPLAYED = Counter("livemall_orders_replayed", "Idempotent replays: a repeated key got its stored order")
ORDER_SECONDS = Histogram(
    "livemall_order_seconds",
    "Time to place an order (queue, batch and commit) by outcome",
    ["outcome"],  # accepted, replayed, sold_out, refused
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_ORDER_OUTCOMES = {"accepted": ORDERS_ACCEPTED, "replayed": ORDERS_REPLAYED, "sold_out": ORDERS_SOLD_OUT}


def count_order(outcome: str, seconds: float) -> None:
    """One POST /api/orders: `outcome` is accepted, replayed, sold_out or refused."""
    ORDER_SECONDS.labels(outcome).observe(seconds)
    counter = _ORDER_OUTCOMES.get(outcome)
    if counter is not None:
        counter.inc()


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_LATENCY.labels(request.method, _route_template(request), f"{status // 100}xx").observe(
            time.perf_counter() - started
        )


@dataclass(frozen=True, slots=True)
class Labelled:
    """A stats value broken down by one label, e.g. refusals by `reason`. The label's
    values must come from a fixed set (error codes), never a user or an id."""

    label: str
    values: Mapping[str, float]


class StatsCollector(Collector):
    """Turns a `stats()` dict (e.g. LiveHub.stats) into metric families at scrape time.

    Keys ending in `_total` become counters, the rest gauges; a `Labelled` value becomes
    one sample per label value. Reading at scrape time keeps the relay's per-packet path
    free of any metrics call.
    """

    def __init__(self, prefix: str, read: Callable[[], dict[str, float | Labelled] | None]) -> None:
        self.prefix = prefix
        self.read = read

    def collect(self) -> Iterable:
        stats = self.read() or {}
        for key, value in sorted(stats.items()):
            labelled = isinstance(value, Labelled)
            if not labelled and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                continue
            name = f"{self.prefix}_{key}"
            labels = [value.label] if labelled else None
            if key.endswith("_total"):
                family = CounterMetricFamily(name[: -len("_total")], f"{self.prefix} {key}", labels=labels)
            else:
                family = GaugeMetricFamily(name, f"{self.prefix} {key}", labels=labels)
            if labelled:
                for label_value, n in sorted(value.values.items()):
                    family.add_metric([label_value], n)
            else:
                family.add_metric([], value)
            yield family


_collectors: dict[str, StatsCollector] = {}


def register_stats(prefix: str, read: Callable[[], dict[str, float | Labelled] | None]) -> None:
    """Expose a stats() reader under `prefix`; re-registering replaces the reader
    (tests create many apps in one process, the registry is process-wide)."""
    if prefix in _collectors:
        _collectors[prefix].read = read
        return
    collector = StatsCollector(prefix, read)
    REGISTRY.register(collector)
    _collectors[prefix] = collector


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# Objects web.cli.freeze_startup_heap took out of the collector's sight (0: not frozen).
register_stats("livemall_process", lambda: {"gc_frozen_objects": gc.get_freeze_count()})

