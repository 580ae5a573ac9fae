"""The `livemall` command: serve, demo, users add, db upgrade."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from orders.errors import DomainError
from orders.models import Role
from web.settings import Settings, load_settings


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", help="SQLAlchemy URL (env LIVEMALL_DATABASE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livemall", description="Live-commerce streaming and chat server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (env LIVEMALL_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env LIVEMALL_PORT, default 8080)")
    serve.add_argument("--redis", help="Redis URL to join other processes (env LIVEMALL_REDIS)")
    serve.add_argument(
        "--ice-server", action="append", dest="ice_servers", help="STUN/TURN URL for WebRTC, repeatable"
    )
    serve.add_argument("--recordings-dir", help="where show recordings are written")
    serve.add_argument(
        "--public-ip", help="IP address WebRTC candidates announce, behind a 1:1 NAT (env LIVEMALL_PUBLIC_IP)"
    )
    serve.add_argument(
        "--udp-ports", help="UDP port range for WebRTC media, e.g. 40000-40100 (env LIVEMALL_UDP_PORTS)"
    )

    demo = sub.add_parser("demo", help="load demo data (idempotent)")
    _common(demo)

    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create a user or change their role")
    _common(add)
    add.add_argument("email")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password")
    add.add_argument("--name")
    add.add_argument("--country", default=None)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply pending migrations")
    _common(upgrade)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "host", "port", "database", "redis", "ice_servers", "recordings_dir", "public_ip", "udp_ports"
        )
    }
    settings = load_settings(overrides)
    if args.command == "serve" and not os.environ.get("LIVEMALL_SECRET"):
        settings = replace(settings, secret=kept_secret(SECRET_FILE))
    return settings


SECRET_FILE = Path("livemall.secret")  # beside the embedded database, in the working directory


def kept_secret(path: Path) -> str:
    """The session-signing key kept in a file (mode 0600) when LIVEMALL_SECRET is not
    set: a key made per process signed every user out at each restart. Processes that
    start together agree on one: the file appears whole (written aside, then linked;
    a link never replaces), and whoever loses the race reads the winner's key."""
    if not path.exists():
        fd, aside = tempfile.mkstemp(dir=path.parent or ".", prefix=".livemall-secret-")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(32))
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(aside)
    return path.read_text(encoding="ascii").strip()


def _migrate(settings: Settings) -> None:
    from web.migrate import upgrade

    upgrade(settings.database)


async def _with_session(settings: Settings, work):
    from orders.db import Database

    db = Database(settings.database)
    try:
        async with db.transaction() as session:
            return await work(session)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    from web.logs import configure

    configure(json_lines=settings.log_json)

    if args.command == "db":
        _migrate(settings)
        print("database is up to date")
        return 0

    if settings.auto_migrate or args.command != "serve":
        _migrate(settings)

    if args.command == "demo":
        from orders.demo import DEMO_PASSWORD, load_demo

        from orders.product_images import DiskImageStore  # the products' pictures, drawn into media_dir

        pictures = DiskImageStore(settings.media_dir)
        result = asyncio.run(_with_session(settings, lambda session: load_demo(session, images=pictures)))
        print(f"demo data ready: {result['committees']} committees, show {result['show_id']}")
        print(f"sign in as host@livemall.example, member@…, buyer@… or admin@… with password {DEMO_PASSWORD!r}")
        return 0

    if args.command == "users":
        from orders.accounts import set_role
        from orders.visible_text import check_name

        async def add(session):
            user = await set_role(session, args.email, Role(args.role), args.password)
            if args.name:
                user.name = check_name(args.name)
            if args.country:
                user.country = args.country.upper()
            return user

        try:
            user = asyncio.run(_with_session(settings, add))
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print(f"user {user.email} is {user.role.value}")
        return 0

    asyncio.run(serve(settings))
    return 0


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then drain (web/drain.py) and close within the grace period."""
    import faulthandler
    import signal

    from aiohttp import web

    from web.aiohttp_hooks import cap_connections
    from web.app import create_app
    from web.drain import drain
    from web.logs import AccessLogger

    grace = settings.shutdown_grace
    settle = max(0.0, min(settings.drain_settle, grace / 2))
    app = create_app(settings)
    runner = web.AppRunner(
        # What is left after the drain, halved: the rest closes peers, Redis and the database.
        app, handle_signals=False, access_log_class=AccessLogger, shutdown_timeout=max(0.5, (grace - settle) / 2)
    )
    await runner.setup()
    cap_connections(runner, settings)  # web/aiohttp_hooks.py: connections per node and per address
    await web.TCPSite(runner, settings.host, settings.port).start()
    freeze_startup_heap()
    logging.getLogger("livemall").info("serving on http://%s:%s", settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # The grace period is a promise to the supervisor (systemd, compose, the balancer):
    # whatever hangs, the process is gone by then, and says where it hung. faulthandler's
    # timer runs on its own thread, so it fires even if the event loop is blocked.
    loop.call_later(max(0.0, grace - 1), _log_pending_tasks)
    faulthandler.dump_traceback_later(grace, exit=True)
    await drain(app, settle)
    await runner.cleanup()
    faulthandler.cancel_dump_traceback_later()


def freeze_startup_heap() -> None:
    """Take what start-up built (modules, classes, ORM mappers, templates, the app) out
    of the garbage collector's sight for good.

    A full collection walks every tracked object; with the start-up heap in it, one took
    ~48 ms in the middle of a 1,000-buyer flash sale (bench/flash_sale.py) and pushed
    that burst's p99 from ~45 to ~100 ms; anything else on the event loop (chat, WHEP
    answers, the relay's timers) stalls for as long. Frozen objects are never collected,
    so garbage is collected first; what start-up leaves is meant to live as long as the
    process.
    """
    gc.collect()
    gc.freeze()


def _log_pending_tasks() -> None:
    """Where a slow shutdown is stuck, for the log: every task still running, with its stack."""
    import io

    log = logging.getLogger("livemall")
    for task in asyncio.all_tasks():  # serve()'s own task among them: where the shutdown awaits
        stack = io.StringIO()
        task.print_stack(limit=8, file=stack)
        log.error("shutdown still waiting on %s", stack.getvalue().strip())


if __name__ == "__main__":
    sys.exit(main())
