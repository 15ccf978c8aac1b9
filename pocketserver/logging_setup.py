"""Logging for every subcommand: one format on stderr, the level from --log-level or the config.

The access log (logger `pocketserver.access`, one INFO line per request: method, path without the
query string, status, time) is written by app.py; this module only decides where lines go.
"""
from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send every logger's records at `level` and above to stderr (journald keeps stderr)."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=FORMAT)
    # aiosqlite logs every statement at debug; that drowns the server's own debug lines.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLevelName(level.upper())))
