"""The `exchange` command: one subcommand per part of the system."""

from __future__ import annotations

import argparse
import os
import sys

from chalicelib.config import settings


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
    from chalicelib import catalog, queues
    from chalicelib.sqs import sqs_client

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

    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
