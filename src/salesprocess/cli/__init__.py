"""The ``salesprocess`` command line."""

from __future__ import annotations

import sys

# Import the dispatch module first: importing a submodule binds its name on the package, and
# the function below must be what ``salesprocess.cli.main`` names afterwards.
from . import main as _dispatch


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    return _dispatch.run(sys.argv[1:] if argv is None else argv)
