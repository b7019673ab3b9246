"""GET /metrics: Prometheus text, for a scraper holding METRICS_TOKEN (ADMIN_TOKEN when
that is unset). 401 without a token, 403 with a wrong one."""
import hmac
import logging
from datetime import datetime

from flask import Blueprint, Response, request

from .. import metrics, services
from ..extensions import db
from ..fulfil import breaker
from ..logs import event
from ..notify import outbox
from ..ops import reports
from ..timeutil import utcnow
from .errors import ApiError

bp = Blueprint("scrape", __name__)
log = logging.getLogger("elife.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Prometheus reads


def scrape_token(settings):
    return settings.METRICS_TOKEN or settings.ADMIN_TOKEN


def _pending():
    """(count, seconds the oldest has waited) of the seed's query 4, whether the operator
    breaker is open, and the subscribe messages by (kind, status); None when the database
    cannot be asked -- the rest of the scrape is served all the same."""
    now = utcnow()
    try:
        p = reports.pending_compensation(now, services.current().unitel.has_status_query)
        breaker_open = breaker.state(services.current().settings)[0] == breaker.OPEN
        messages = outbox.counts()
        db.session.commit()
    except Exception as exc:  # noqa: BLE001 -- an outage is when the other metrics matter most
        db.session.rollback()
        event(log, logging.WARNING, "metrics_database_unavailable", error=type(exc).__name__)
        return None
    oldest = p["oldestPaidAt"]
    seconds = 0.0
    if oldest:
        seconds = max(0.0, (now - datetime.strptime(oldest, "%Y-%m-%dT%H:%M:%S.%fZ")).total_seconds())
    return p["pendingCount"], seconds, breaker_open, messages


@bp.get("/metrics")
def scrape():
    s = services.current().settings
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "missing_token", "Authorization: Bearer <METRICS_TOKEN> is required",
                       {"WWW-Authenticate": 'Bearer realm="elife-metrics"'})
    expected = scrape_token(s)
    given = header[len("Bearer "):].strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this token may not read the metrics")
    return Response(metrics.exposition(s.METRICS_DIR, _pending), content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})
