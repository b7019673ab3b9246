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
# gthread: threads per worker. A payment notice is answered first and its top-up (up to
# UNITEL_READ_TIMEOUT, 30 s) runs after, on the worker's recharge pool, so a few slow operator
# answers never hold up WeChat or the next customer. Each thread holds at most one
# database connection at a time: keep threads <= the pool's 5 (database.engine_options).
worker_class = "gthread"
workers = int(_env("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 5)))
threads = int(_env("GUNICORN_THREADS", "4"))
# gthread workers tell the master they are alive from their own loop, so this bounds a
# stuck worker, not a request: a long top-up in a thread does not trip it.
timeout = int(_env("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, stop accepting and let started top-ups finish: the operator's connect and
# read timeouts, a WeChat refund after a refusal, and room to spare.
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", str(int(_s.UNITEL_CONNECT_TIMEOUT + _s.UNITEL_READ_TIMEOUT) + 15)))
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"

# Prometheus multiprocess mode, so that one scrape of /metrics sums every worker: each
# worker writes its metrics to files in this directory (one per port: two services on a
# host keep theirs apart). prometheus_client reads the variable when a worker first
# imports it, after this file has run in the master.
_metrics_dir = os.path.join(_s.METRICS_DIR, f"workers-{_s.PORT}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
os.makedirs(_metrics_dir, exist_ok=True)


def when_ready(server):
    """Bound to the port, no worker yet: the files left by the last master's workers go."""
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.unlink(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    """A worker is gone: its live gauges go with it (its counters stay in the sums)."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
