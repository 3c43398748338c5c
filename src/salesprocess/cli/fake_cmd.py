"""``salesprocess fake hubspot|salesforce|zoho|fxiaoke|pipedrive|odoo``: serve a local fake of a CRM's API on a loopback port."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from ._util import CLIError


def register(sub: Any) -> None:
    p = sub.add_parser("fake", help="serve a local fake CRM API (HubSpot, Salesforce, Zoho, Fxiaoke, Pipedrive, Odoo) "
                                     "for tests and demos")
    ps = p.add_subparsers(dest="fake_command", metavar="VENDOR", required=True)
    for vendor, default_limit in (("hubspot", "100/10s"), ("salesforce", None), ("zoho", None),
                                  ("fxiaoke", "100/20s"), ("pipedrive", "20/2s"), ("odoo", None)):
        a = ps.add_parser(vendor, help=f"serve the {vendor} fake until interrupted")
        a.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
        a.add_argument("--port", type=int, default=0, help="the port (default: a free one, printed)")
        a.add_argument("--token-env", help="an environment variable holding the token the fake accepts "
                                           "(Fxiaoke: the permanent code; Odoo: the API key; "
                                           "default: the fake's built-in one)")
        a.add_argument("--seed-deals", type=int, default=0, metavar="N", help="create N deals first")
        what = {"zoho": "API credits per window, e.g. 5000/86400s", "fxiaoke": "calls per interface, e.g. 100/20s",
                "pipedrive": "the burst window per token, e.g. 80/2s", "odoo": "a reverse proxy's limit, e.g. 10/1s"}
        a.add_argument("--rate-limit", default=default_limit,
                       help=f"enforce CALLS/PERIOD ({what.get(vendor, 'e.g. 100/10s')}; default {default_limit or 'none'}; "
                            "'none' to turn off)")
        if vendor == "hubspot":
            a.add_argument("--search-rate-limit", default="5/1s", help="the search endpoints' limit (default 5/1s)")
            a.add_argument("--retry-after", type=float, help="send Retry-After (seconds) with 429 responses")
        elif vendor in ("salesforce", "fxiaoke"):
            a.add_argument("--daily-limit", type=int, help="the daily API allocation")
        elif vendor == "pipedrive":
            a.add_argument("--search-rate-limit", default="10/2s", help="the search endpoint's limit (default 10/2s)")
            a.add_argument("--daily-budget", type=int, help="the daily token budget (default: unlimited)")
        elif vendor == "odoo":
            a.add_argument("--db", default="salesprocess", help="the database name (default salesprocess)")
            a.add_argument("--login", default="api@example.com", help="the API user's login")
            a.add_argument("--odoo-version", type=int, default=19,
                           help="the server's major version (default 19: JSON-2 and JSON-RPC; below 19: JSON-RPC only)")
            a.add_argument("--seed-batch", type=int, default=1, metavar="N",
                           help="create the seeded deals N per transaction (they share a write_date)")
        a.set_defaults(func=_serve, vendor=vendor)


def _rate(v: str | None) -> tuple[int, float] | None:
    from ..sync import parse_rate

    if v is None or v.lower() == "none":
        return None
    try:
        return parse_rate(v)
    except ValueError as e:
        raise CLIError(str(e)) from None


def make_fake(args: argparse.Namespace) -> Any:
    opts: dict[str, Any] = {"rate_limit": _rate(args.rate_limit)}
    if args.token_env:
        tok = os.environ.get(args.token_env)
        if not tok:
            raise CLIError(f"environment variable {args.token_env} is not set")
        opts["token"] = tok
    if args.vendor == "hubspot":
        from salesprocess_adapters.fakes import HubSpotFake

        opts["search_rate_limit"] = _rate(args.search_rate_limit)
        if args.retry_after is not None:
            opts["retry_after"] = args.retry_after
        fake: Any = HubSpotFake(**opts)
    elif args.vendor == "salesforce":
        from salesprocess_adapters.fakes import SalesforceFake

        if args.daily_limit is not None:
            opts["daily_limit"] = args.daily_limit
        fake = SalesforceFake(**opts)
    elif args.vendor == "zoho":
        from salesprocess_adapters.fakes import ZohoFake

        fake = ZohoFake(**opts)
    elif args.vendor == "pipedrive":
        from salesprocess_adapters.fakes import PipedriveFake

        opts["search_rate_limit"] = _rate(args.search_rate_limit)
        if args.daily_budget is not None:
            opts["daily_budget"] = args.daily_budget
        fake = PipedriveFake(**opts)
    elif args.vendor == "odoo":
        from salesprocess_adapters.fakes import OdooFake

        if "token" in opts:
            opts["api_key"] = opts.pop("token")
        fake = OdooFake(db=args.db, login=args.login, version=args.odoo_version, **opts)
        if args.seed_deals:
            fake.seed_deals(args.seed_deals, batch=max(1, args.seed_batch))
        return fake
    else:
        from salesprocess_adapters.fakes import FxiaokeFake

        if "token" in opts:
            opts["permanent_code"] = opts.pop("token")
        if args.daily_limit is not None:
            opts["daily_limit"] = args.daily_limit
        fake = FxiaokeFake(**opts)
    if args.seed_deals:
        fake.seed_deals(args.seed_deals)
    return fake


def _serve(args: argparse.Namespace) -> int:
    fake = make_fake(args)
    server = fake.serve(args.host, args.port)
    print(f"{args.vendor} fake listening on {server.base_url}", flush=True)
    if args.seed_deals:
        print(f"seeded {args.seed_deals} deals", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        print("stopped", file=sys.stderr)
    return 0
