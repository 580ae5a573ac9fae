"""Issue 14, item 10: the sandbox card processor was switched on by the webhook secret
alone, and a buyer "paid" $1,800 with card 4242…. It now runs only in an explicit test
mode (`payment_sandbox`), which refuses to start with an https:// public_url."""

from __future__ import annotations

from pathlib import Path

import pytest

from orders.payments import SandboxInProduction, SandboxProvider
from tests.conftest import test_settings
from tests.orders.conftest import WEBHOOK_SECRET, open_shop
from web.api_orders import PROVIDERS
from web.settings import load_settings


async def test_a_webhook_secret_alone_does_not_open_the_sandbox(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path, payment_sandbox=False)
    order = await shop.placed(quantity=2)

    pay = await shop.post(f"/api/orders/{order['id']}/pay", "buyer", {"provider": "sandbox"})
    charge = await shop.post("/api/payments/sandbox/charge", "buyer",
                             {"payment_ref": "sbx_anything", "card_number": "4242 4242 4242 4242"})
    hook = await shop.webhook({"id": "evt_1", "type": "payment.succeeded",
                               "data": {"payment_ref": "sbx_x", "amount": order["total"], "currency": "USD"}})

    assert pay.status == 422 and (await pay.json())["field"] == "provider"
    assert charge.status == 404 and (await charge.json())["error"] == "unknown_provider"
    assert hook.status == 404 and (await hook.json())["error"] == "unknown_provider"
    mine = await (await shop.get(f"/api/orders/{order['id']}", "buyer")).json()
    assert mine["status"] == "pending"


async def test_the_sandbox_is_off_unless_the_test_mode_is_set():
    settings = load_settings(environ={"LIVEMALL_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert settings.payment_sandbox is False
    assert load_settings(environ={"LIVEMALL_PAYMENT_SANDBOX": "true"}).payment_sandbox is True


def test_the_app_refuses_to_start_with_the_sandbox_and_an_https_public_url(sqlite_url: str, tmp_path: Path):
    from web.app import create_app

    settings = test_settings(sqlite_url, recordings_dir=tmp_path / "r", payment_sandbox=True,
                             payment_webhook_secret=WEBHOOK_SECRET, public_url="https://live.example.org")
    with pytest.raises(SandboxInProduction, match="public_url"):
        create_app(settings)


def test_the_cli_refuses_to_serve_with_the_sandbox_and_an_https_public_url(sqlite_url: str, tmp_path: Path):
    import subprocess
    import sys

    env = {"LIVEMALL_PAYMENT_SANDBOX": "true", "LIVEMALL_PUBLIC_URL": "https://live.example.org",
           "LIVEMALL_PAYMENT_WEBHOOK_SECRET": "s", "LIVEMALL_RECORDINGS_DIR": str(tmp_path / "r"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "web.cli", "serve", "--port", "0", "--database", sqlite_url],
                          env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "LIVEMALL_PAYMENT_SANDBOX" in done.stderr


async def test_in_test_mode_the_sandbox_is_in_service(aiohttp_client, sqlite_url, tmp_path):
    shop = await open_shop(aiohttp_client, sqlite_url, tmp_path)  # payment_sandbox=True
    assert isinstance(shop.app[PROVIDERS].get("sandbox"), SandboxProvider)
