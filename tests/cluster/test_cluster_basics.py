"""The local cluster answers through nginx, every node serves metrics, compose names real settings."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from web.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, bytes, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read(), dict(response.headers)


def test_nginx_serves_the_api_and_readiness(cluster):
    status, body, _ = _get(cluster.url + "/api/committees")
    assert status == 200 and len(json.loads(body)) == 14
    status, body, headers = _get(cluster.url + "/readyz")
    assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}
    assert headers.get("X-Request-Id")  # nginx's $request_id reaches the node and comes back


def test_every_node_serves_parseable_metrics(cluster):
    for n in (1, 2):
        _, body, headers = _get(cluster.node_url(n) + "/metrics")
        assert headers["Content-Type"].startswith("text/plain")
        names = {family.name for family in text_string_to_metric_families(body.decode())}
        assert "livemall_http_request_seconds" in names


def test_metrics_are_not_served_to_the_public_through_nginx(cluster):
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(cluster.url + "/metrics")
    assert refused.value.code == 404


def test_compose_file_parses_and_names_only_real_settings():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert {"node1", "node2", "nginx", "postgres", "redis", "coturn"} <= set(compose["services"])
    fields = {f.name for f in dataclasses.fields(Settings)}
    named = set()
    for service in ("node1", "node2"):
        named |= {k for k in compose["services"][service]["environment"] if k.startswith("LIVEMALL_")}
    unknown = {k for k in named if k[len("LIVEMALL_"):].lower() not in fields}
    assert not unknown, f"compose sets variables no node reads: {unknown}"
    assert {"LIVEMALL_DATABASE", "LIVEMALL_REDIS", "LIVEMALL_SECRET", "LIVEMALL_TURN_URLS", "LIVEMALL_TURN_SECRET",
            "LIVEMALL_NODE_NAME", "LIVEMALL_NODE_URL", "LIVEMALL_PUBLIC_IP", "LIVEMALL_UDP_PORTS",
            "LIVEMALL_SHUTDOWN_GRACE", "LIVEMALL_CORS_ORIGINS"} <= named


def test_compose_gives_each_node_its_own_name_and_media_ports_and_time_to_drain():
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    nodes = [services[name]["environment"] for name in ("node1", "node2")]
    assert [env["LIVEMALL_NODE_NAME"] for env in nodes] == ["n1", "n2"]
    ranges = [tuple(map(int, env["LIVEMALL_UDP_PORTS"].split("-"))) for env in nodes]
    assert ranges[0][1] < ranges[1][0] or ranges[1][1] < ranges[0][0]
    # Docker must not SIGKILL a node before its own drain has had its grace period.
    grace = int(re.search(r":-(\d+)", nodes[0]["LIVEMALL_SHUTDOWN_GRACE"]).group(1))
    assert int(services["node1"]["stop_grace_period"].rstrip("s")) > grace


def test_the_operations_guide_names_only_real_settings():
    guide = (ROOT / "docs" / "operations.md").read_text()
    fields = {f.name for f in dataclasses.fields(Settings)}
    deploy_only = {"cluster_port", "cluster_dir", "turn_port", "node1", "node2", "pg_socket", "db_password",
                   "whep_upstream", "tls_port", "tls_cert", "tls_key"}
    named = {m.lower() for m in re.findall(r"LIVEMALL_([A-Z0-9_]+)", guide)}
    assert named, "docs/operations.md lists the settings"
    assert not named - fields - deploy_only, f"unknown settings in docs/operations.md: {named - fields - deploy_only}"


def test_systemd_unit_and_nginx_template_agree_on_node_names():
    unit = (ROOT / "deploy" / "systemd" / "livemall@.service").read_text()
    assert "Environment=LIVEMALL_NODE_NAME=%i" in unit and "KillSignal=SIGTERM" in unit
    template = (ROOT / "deploy" / "nginx" / "livemall.conf.template").read_text()
    assert re.search(r"~\^n1\\\. livemall_node1;", template)
