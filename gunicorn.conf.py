"""gunicorn settings, read by `gunicorn wsgi:app -c gunicorn.conf.py` from the repo root.

The bind port comes from the same settings as everything else (PORT in the environment
or .env), so scripts/run, PM2 and systemd all agree. Defaults suit 2 cores.
"""
import multiprocessing
import os

from elife.config import load_settings

_s = load_settings()  # also loads .env into the environment read below


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
