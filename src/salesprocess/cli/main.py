"""Command dispatch. Each command lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Any

from ..errors import SalesProcessError
from ._util import CLIError

# Modules under salesprocess.cli that contribute commands, in help order.
COMMANDS: tuple[str, ...] = (
    "demo",
    "process_cmd",
    "kpi_cmd",
    "goals_cmd",
    "funnel_cmd",
    "generate_cmd",
    "import_cmd",
    "export_cmd",
    "forecast_cmd",
    "score_cmd",
    "risk_cmd",
    "commissions_cmd",
    "contest_cmd",
    "evaluate_cmd",
    "sync_cmd",
    "fake_cmd",
    "activities_cmd",
    "rules_cmd",
    "feedback_cmd",
    "competitors_cmd",
    "segments_cmd",
    "review_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="salesprocess",
        description="Sales-process management: stages, pipelines, KPIs, goals, incentives, CRM sync.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show error details")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"salesprocess {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return p


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
        return int(rc or 0)
    except CLIError as e:
        print(f"salesprocess: error: {e}", file=sys.stderr)
        return e.code
    except SalesProcessError as e:
        print(f"salesprocess: error: {e}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 1
    except BrokenPipeError:  # output piped into head & co.
        return 0
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"salesprocess: error: {type(e).__name__}: {e}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 1
    except KeyboardInterrupt:
        print("salesprocess: interrupted", file=sys.stderr)
        return 130
