"""The `exchange` command: one subcommand per part of the system."""

from __future__ import annotations

import argparse
import os
import sys

from chalicelib.platform.config import settings


def _cmd_dev(args: argparse.Namespace) -> int:
    from ops import devstack

    return devstack.run(args.host, args.port)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ops import migrations

    url = settings().database_url
    if args.down:
        print("rolled back:", ", ".join(migrations.migrate_down(url, args.down)) or "nothing")
        return 0
    migrations.ensure_database(url)
    print("applied:", ", ".join(migrations.migrate_up(url)) or "nothing pending")
    migrations.seed(url)
    print("catalog seeded")
    return 0


def _cmd_queues(_args: argparse.Namespace) -> int:
    from chalicelib.core import catalog
    from chalicelib.messaging import queues
    from chalicelib.messaging.sqs import sqs_client

    cfg = settings()
    urls = queues.ensure_queues(
        sqs_client(cfg), queues.queue_specs(cfg.queue_prefix, list(catalog.PRODUCTS))
    )
    for product_id, url in urls.items():
        print(f"{product_id}: {url}")
    return 0


def _cmd_services(args: argparse.Namespace) -> int:
    """Start whatever of Postgres, Redis and SQS is not running, and leave it running (CI)."""
    from ops import services

    for resolve in (services.postgres, services.redis, services.sqs):
        svc = resolve(services.STATE_DIR)
        print(f"{svc.name:<9} {svc.url}  ({svc.source})")
    return 0


def _cmd_matcher(args: argparse.Namespace) -> int:
    """Consume the product queues until SIGTERM/SIGINT (then finish the batch and exit 0)."""
    import signal

    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "exchange-matcher")
    from matcher.coordinator import Matcher
    from matcher.options import Options

    products = [p for p in (args.products or "").split(",") if p] or None
    options = Options(wait_s=args.wait, merge=args.merge)
    if args.prefetch is not None:
        options.prefetch = args.prefetch
    matcher = Matcher(settings(), products, options)

    def on_signal(_signum: int, _frame: object) -> None:
        matcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return matcher.run()


def _cmd_feed(args: argparse.Namespace) -> int:
    """The WebSocket market data feed, from the matcher's Redis messages, until Ctrl-C."""
    from feed import server

    return server.main(settings(), args.host, args.port)


def _cmd_ws_fanout(args: argparse.Namespace) -> int:
    """Post the matcher's feed messages to API Gateway WebSocket subscribers, until SIGTERM."""
    import signal

    from chalicelib.core.market_keys import keys_for
    from chalicelib.marketdata import ws
    from chalicelib.platform.config import int_env
    from feed import fanout

    url = os.environ.get("WS_CALLBACK_URL")
    if not url:
        print("set WS_CALLBACK_URL: https://<api id>.execute-api.<region>.amazonaws.com/<stage>")
        return 2
    threads = int_env("WS_FANOUT_THREADS", fanout.DEFAULT_THREADS)
    if threads < 1:
        print("WS_FANOUT_THREADS must be at least 1")
        return 2
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    post = ws.poster(ws.management_client(url, connections=threads))
    subs, keys = ws.subscriptions_store(), keys_for(settings())
    fanout.run(subs, post, keys, stop=lambda: bool(stopping), threads=threads)
    return 0


def _cmd_health(_args: argparse.Namespace) -> int:
    """Each dependency's check as the API makes it (the detail `GET /health` keeps to itself)."""
    from chalicelib.api import health

    healthy, checks = health.check_all()
    for name, check in checks.items():
        if check["status"] == "ok":
            print(f"{name:<9} ok    {check['latency_ms']} ms")
        else:
            print(f"{name:<9} down  {check['error']}")
    return 0 if healthy else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from matcher.check import run_check

    products = [p for p in (args.products or "").split(",") if p] or None
    report = run_check(settings().database_url, products, full=args.full, save=not args.no_save)
    print(report.text())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exchange", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole exchange locally (Ctrl-C stops it)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    dev.set_defaults(fn=_cmd_dev)

    mig = sub.add_parser("migrate", help="apply migrations to $DATABASE_URL and seed the catalog")
    mig.add_argument("--down", type=int, default=0, metavar="N", help="roll back N migrations")
    mig.set_defaults(fn=_cmd_migrate)

    q = sub.add_parser("queues", help="create or update the SQS FIFO queues and their DLQs")
    q.set_defaults(fn=_cmd_queues)

    s = sub.add_parser("services", help="start missing local services and leave them running")
    s.set_defaults(fn=_cmd_services)

    m = sub.add_parser("matcher", help="match and settle orders from the product queues")
    m.add_argument("--products", help="comma-separated product ids (default: all)")
    m.add_argument("--wait", type=int, default=2, help="SQS long-poll seconds (default 2)")
    m.add_argument(
        "--prefetch",
        type=int,
        help="received batches waiting to be settled, per product (default 4, Options.prefetch)",
    )
    m.add_argument(
        "--merge",
        type=int,
        default=1,
        help="waiting batches settled in one transaction, at most (default 1)",
    )
    m.set_defaults(fn=_cmd_matcher)

    f = sub.add_parser("feed", help="serve the WebSocket market data feed (level2, ticker, ...)")
    f.add_argument("--host", default="127.0.0.1")
    f.add_argument("--port", type=int, default=int(os.environ.get("FEED_PORT", "8001")))
    f.set_defaults(fn=_cmd_feed)

    w = sub.add_parser(
        "ws-fanout",
        help="post feed messages to API Gateway WebSocket clients "
        "(WS_CALLBACK_URL; WS_FANOUT_THREADS posts at once, default 16)",
    )
    w.set_defaults(fn=_cmd_ws_fanout)

    h = sub.add_parser(
        "health", help="check Postgres, Redis and the queues as the API does; exit 1 if one is down"
    )
    h.set_defaults(fn=_cmd_health)

    c = sub.add_parser("check", help="verify balances, holds, ledger, trades and replay")
    c.add_argument("--products", help="comma-separated product ids to replay (default: all)")
    c.add_argument(
        "--full",
        action="store_true",
        help="replay every product from seq 0, ignoring the stored checkpoints",
    )
    c.add_argument(
        "--no-save",
        action="store_true",
        help="store no checkpoint (the run writes nothing)",
    )
    c.set_defaults(fn=_cmd_check)

    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
