"""The rooms' figures on /metrics (prometheus text format, parsed by prometheus-client):
connected sockets, chat in, deliveries out, refusals by reason; no per-user labels."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.rooms.conftest import BUYER, MEMBER

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server) -> tuple[Samples, dict[str, list[str]]]:
    """Every sample by (name, labels), and the label names of each livemall_rooms family."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    samples: Samples = {}
    labels: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            if family.name.startswith("livemall_rooms"):
                labels.setdefault(family.name, []).extend(k for k in sample.labels if k not in labels[family.name])
    return samples, labels


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_move_when_chat_flows(server):
    before, _ = await scrape(server)
    buyer = await server.join(BUYER)
    member = await server.join(MEMBER)
    anonymous = await server.join(None)

    ack = await buyer.call("chat", {"text": "metrics, please"})
    for client in (buyer, member, anonymous):
        await client.next("chat", lambda m: m["id"] == ack["id"])
    assert (await anonymous.call("chat", {"text": "me too"}))["error"] == "unauthorized"
    assert (await buyer.call("chat", {"text": ""}))["error"] == "invalid"
    assert (await server.viewer().refusal({"show": 999}))["data"]["error"] == "not_found"
    after, labels = await scrape(server)

    assert after[("livemall_rooms_sockets", ())] == 3
    assert moved(before, after, "livemall_rooms_chat_in_total") == 1
    # The message to three sockets plus each socket's state, at least.
    assert moved(before, after, "livemall_rooms_deliveries_total") >= 6
    assert moved(before, after, "livemall_rooms_refusals_total", reason="unauthorized") == 1
    assert moved(before, after, "livemall_rooms_refusals_total", reason="invalid") == 1
    assert moved(before, after, "livemall_rooms_connect_refusals_total", reason="not_found") == 1
    # Only the fixed `reason` label, never a user, socket or show.
    assert {name: set(names) for name, names in labels.items() if names} == {
        "livemall_rooms_refusals": {"reason"}, "livemall_rooms_connect_refusals": {"reason"}}
