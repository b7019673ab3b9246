"""Prometheus metrics: what the service counts, and what GET /metrics reads.

Under gunicorn every worker is a process of its own; prometheus_client's multiprocess
mode has each write its values to files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py
sets it to METRICS_DIR/workers before any worker starts, and empties it), and one scrape
sums them. Without that variable (tests in-process, a single `flask` process) the
values live in this process and the scrape reads them here.

The sweep runs under cron, one short process a minute: its summary of a run is written
to METRICS_DIR/sweep.json (atomically) and read by the scrape, not kept in files per
process, which would pile up one set a minute.

Read at scrape time from the database: the seed's fourth query (paid orders waiting for
compensation), as gauges; and the subscribe messages by kind and outcome, a counter the
database keeps (the top-up pool, the cron sweep and every host send them).
"""
import functools
import json
import logging
import os
import tempfile
import threading
import time

SWEEP_FILE = "sweep.json"
NOTIFICATION_OUTCOMES = ("sent", "no_consent", "failed", "skipped")  # a message's final statuses
_lock = threading.Lock()
_m = None


def multiprocess():
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Metrics:
    """The metrics, made on first use. prometheus_client is imported only then: it picks
    multiprocess mode when first imported, and gunicorn's master imports this package
    (through gunicorn.conf.py) before it sets PROMETHEUS_MULTIPROC_DIR for the workers."""

    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
        disable_created_metrics()  # *_created series: noise for every alert we write
        self.orders_created = Counter("elife_orders_created_total", "Orders created (not idempotent replays)")
        self.callbacks = Counter("elife_callbacks_total", "WeChat payment notices, by the decision about them",
                                 ["decision"])
        self.operator_requests = Counter(
            "elife_operator_requests_total",
            "Requests to the operator (Unitel), by kind (submit, resubmit, status) and outcome",
            ["kind", "outcome"])
        self.operator_seconds = Histogram("elife_operator_request_seconds",
                                          "Time the operator took to answer, by kind", ["kind"],
                                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10))
        self.recharge_seconds = Histogram("elife_recharge_seconds", "From paid to recharged (success)",
                                          buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600))
        self.refunds = Counter("elife_refunds_total", "Refunds, by outcome: accepted, refused or error (the request), refunded or closed (WeChat's answer)",
                               ["outcome"])
        self.http_requests = Counter("elife_http_requests_total", "HTTP requests answered, by route and status",
                                     ["endpoint", "status"])


def _metrics():
    global _m
    if _m is None:
        with _lock:
            if _m is None:
                _m = _Metrics()
    return _m


def init():
    """Make the metrics now (create_app: a scrape then lists them all, at 0, from the start)."""
    _metrics()


# -- recording ------------------------------------------------------------------------------
# A metric that cannot be written (its directory gone, a full disk) must never fail the
# payment or the recharge it counts: logged once per process, then quiet.

def _safe(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        global _warned
        try:
            return fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001
            if not _warned:
                _warned = True
                logging.getLogger("elife.metrics").warning(
                    "event=metric_not_recorded metric=%s error=%s", fn.__name__, type(exc).__name__)
            return None
    return wrapper


_warned = False


@_safe
def order_created():
    _metrics().orders_created.inc()


@_safe
def callback(decision):
    _metrics().callbacks.labels(decision=decision or "none").inc()


@_safe
def operator_request(kind, answer):
    m = _metrics()
    m.operator_requests.labels(kind=kind, outcome=answer.outcome).inc()
    if answer.latency_ms is not None:
        m.operator_seconds.labels(kind=kind).observe(answer.latency_ms / 1000)


@_safe
def recharged(paid_at, recharged_at):
    if paid_at is not None and recharged_at is not None:
        _metrics().recharge_seconds.observe(max(0.0, (recharged_at - paid_at).total_seconds()))


@_safe
def refund(outcome):
    _metrics().refunds.labels(outcome=outcome).inc()


@_safe
def http_request(endpoint, status):
    _metrics().http_requests.labels(endpoint=endpoint or "none", status=str(status)).inc()


def operator_counts():
    """{(kind, outcome): count} as counted in this process (for the sweep's summary)."""
    out = {}
    for metric in _metrics().operator_requests.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[(s.labels["kind"], s.labels["outcome"])] = s.value
    return out


# -- the sweep's summary --------------------------------------------------------------------

def write_sweep_summary(metrics_dir, summary, operator_calls):
    """The last run, where the scrape finds it. Written to a temporary file and renamed
    over the old one, so a scrape never reads half a file."""
    data = {"finishedAt": time.time(), "seconds": summary.seconds,
            "stoppedEarly": bool(summary.stopped_early),
            "orders": {k: getattr(summary, k) for k in ("found", "claimed", "settled", "flagged", "skipped",
                                                        "errors")},
            "operatorRequests": [{"kind": k, "outcome": o, "count": n}
                                 for (k, o), n in sorted(operator_calls.items()) if n]}
    os.makedirs(metrics_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=metrics_dir, prefix=".sweep-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, os.path.join(metrics_dir, SWEEP_FILE))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_sweep_summary(metrics_dir):
    try:
        with open(os.path.join(metrics_dir, SWEEP_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the scrape -----------------------------------------------------------------------------

class _ScrapeTime:  # a prometheus_client collector
    """Gauges read when scraped: the sweep's last run, the seed's fourth query and the
    operator breaker (both from the database, shared by every worker and host)."""

    def __init__(self, metrics_dir, pending):
        self.metrics_dir, self.pending = metrics_dir, pending

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        run = read_sweep_summary(self.metrics_dir) or {}
        last = GaugeMetricFamily("elife_sweep_last_run_timestamp_seconds",
                                 "When the last sweep run finished (Unix time; 0: none recorded)")
        last.add_metric([], float(run.get("finishedAt") or 0))
        yield last
        took = GaugeMetricFamily("elife_sweep_last_run_duration_seconds", "How long the last sweep run took")
        took.add_metric([], float(run.get("seconds") or 0))
        yield took
        orders = GaugeMetricFamily("elife_sweep_last_run_orders", "Orders the last sweep run found, claimed, "
                                   "settled, flagged, skipped, or failed on", labels=["result"])
        for k, v in sorted((run.get("orders") or {}).items()):
            orders.add_metric([k], float(v))
        yield orders
        calls = GaugeMetricFamily("elife_sweep_last_run_operator_requests",
                                  "Requests to the operator the last sweep run made", labels=["kind", "outcome"])
        for c in run.get("operatorRequests") or []:
            calls.add_metric([str(c.get("kind")), str(c.get("outcome"))], float(c.get("count") or 0))
        yield calls

        pending = self.pending()
        up = GaugeMetricFamily("elife_metrics_database_up",
                               "1 when this scrape could read the database (the pending gauges need it)")
        up.add_metric([], 0.0 if pending is None else 1.0)
        yield up
        if pending is None:
            return
        count, oldest_seconds, breaker_open, messages = pending
        b = GaugeMetricFamily("elife_breaker_open", "1 while the operator breaker is open (new orders refused)")
        b.add_metric([], 1.0 if breaker_open else 0.0)
        yield b
        p = GaugeMetricFamily("elife_orders_pending_compensation",
                              "Paid orders not claimed for a recharge for over 5 minutes (the seed's query 4)")
        p.add_metric([], float(count))
        yield p
        o = GaugeMetricFamily("elife_orders_pending_compensation_oldest_seconds",
                              "How long the oldest of them has waited since it was paid")
        o.add_metric([], float(oldest_seconds))
        yield o
        from prometheus_client.core import CounterMetricFamily
        sent = CounterMetricFamily("elife_notifications", "Subscribe messages to customers, by kind and by what "
                                   "became of them: sent, no_consent (WeChat's 43101), failed, skipped (no "
                                   "consent or no template)", labels=["kind", "outcome"])
        waiting = GaugeMetricFamily("elife_notifications_pending", "Subscribe messages not yet sent or given up "
                                    "(pending a retry, or being sent now)", labels=["kind"])
        totals, open_ = {}, {}
        for (kind, status), n in messages.items():
            if status in NOTIFICATION_OUTCOMES:
                totals[(kind, status)] = n
            else:
                open_[kind] = open_.get(kind, 0) + n
        for (kind, status), n in sorted(totals.items()):
            sent.add_metric([kind, status], float(n))
        yield sent
        for kind, n in sorted(open_.items()):
            waiting.add_metric([kind], float(n))
        yield waiting


def exposition(metrics_dir, pending):
    """The text a scrape gets. `pending()` -> (count, seconds the oldest has waited, the
    breaker open, {(kind, status): messages}), or None when the database cannot say."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    _metrics()
    registry = CollectorRegistry()
    if multiprocess():
        from prometheus_client import multiprocess as mp
        mp.MultiProcessCollector(registry)  # every worker's files, summed
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(_ScrapeTime(metrics_dir, pending))
    return generate_latest(registry)


class _Forward:
    """This process's own metrics, in a registry of the scrape's."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()
