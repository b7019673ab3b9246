"""Logging: one line per event to stdout, logs/combined.log and (errors) logs/error.log.

Line format: `2026-01-18T10:00:00.123Z INFO elife.recharge event=claim_won order=ORD.. message`.
Every decision is logged through `event()` with a stable key, so `grep event=amount_mismatch`
works, and the seed's Chinese phrases ride along in the message for its runbook greps.
"""
import logging
import os
import sys
import time
from logging.handlers import WatchedFileHandler

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ms = int(record.msecs)
        line = f"{ts}.{ms:03d}Z {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level_name="info", log_dir="logs"):
    level = LEVELS.get(str(level_name).lower(), logging.INFO)
    root = logging.getLogger("elife")
    for h in list(root.handlers):
        if getattr(h, "_elife", False):
            root.removeHandler(h)
            h.close()
    fmt = _Formatter()
    # Under `flask ...` commands stdout is the command's output (report --json is piped
    # into other tools), so the console copy of the log goes to stderr there.
    console = sys.stderr if os.environ.get("FLASK_RUN_FROM_CLI") == "true" else sys.stdout
    handlers = [logging.StreamHandler(console)]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(WatchedFileHandler(os.path.join(log_dir, "combined.log"), encoding="utf-8"))
        err = WatchedFileHandler(os.path.join(log_dir, "error.log"), encoding="utf-8")
        err.setLevel(logging.ERROR)
        handlers.append(err)
    for h in handlers:
        h._elife = True
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False
    return root


def event(logger, level, key, message="", order=None, **fields):
    """Log one decision: `event=<key> order=<n> k=v ... message`."""
    parts = [f"event={key}"]
    if order:
        parts.append(f"order={order}")
    parts.extend(f"{k}={v}" for k, v in fields.items())
    if message:
        parts.append(message)
    logger.log(level, " ".join(parts))
