"""``kfd daemon``: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from kfd import config as config_module
from kfd.cli.show import say_text
from kfd.errors import ConfigError, DaemonRunning, StoreError

EXIT_RUNNING = 3


def main(args: argparse.Namespace) -> int:
    from kfd.daemon.server import Daemon

    try:
        config = config_module.load()
    except ConfigError as exc:
        say_text(f"kfd: {exc}", file=sys.stderr)
        return 2
    if args.log_stderr or sys.stderr.isatty():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    try:
        asyncio.run(Daemon(config).run())
    except DaemonRunning as exc:
        say_text(f"kfd: {exc}", file=sys.stderr)
        return EXIT_RUNNING
    except ConfigError as exc:  # a listener that cannot be set up ([bus])
        say_text(f"kfd: {exc}", file=sys.stderr)
        return 2
    except (StoreError, PermissionError, OSError) as exc:
        say_text(f"kfd: cannot start the daemon: {exc}", file=sys.stderr)
        return 1
    return 0
