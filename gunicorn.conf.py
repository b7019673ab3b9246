"""gunicorn settings, read by `gunicorn wsgi:app -c gunicorn.conf.py` from the repo root.

The bind port comes from the same settings as everything else (PORT in the environment
or .env), so scripts/run, PM2 and systemd all agree. Defaults suit 2 cores.
"""
import multiprocessing
import os
import sys

from elife.config import ConfigError, load_settings

try:
    # The master checks the settings (this also loads .env into the environment read
    # below) before it forks: workers that exit on them would only be respawned, and PM2
    # or systemd would show the service online. Exit 3, as gunicorn does for a worker
    # that cannot boot, so they can tell a configuration error from a crash.
    _s = load_settings().validate()
except ConfigError as e:
    print(f"elife: cannot start: {e}", file=sys.stderr, flush=True)
    sys.exit(3)


def _env(name, default):
    return os.environ.get(name) or default  # `NAME=` (as in .env.example) means unset


bind = f"{_env('HOST', '127.0.0.1')}:{_s.PORT}"
# Requests mostly wait on the database and on WeChat/Unitel: a few sync workers per core.
workers = int(_env("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 5)))
threads = int(_env("GUNICORN_THREADS", "1"))
# Longer than the longest request: a callback is WeChat's order query, perhaps a Unitel
# login, one submit and perhaps a refund, each bounded by its connect and read timeouts
# (about 10 s at the worst); 30 s leaves room.
timeout = int(_env("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, finish requests in flight (an operator call among them) before exiting.
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
