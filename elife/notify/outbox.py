r"""The outbox of subscribe messages: earned with a state change, sent after it, never in
its way.

    earn  -- in the transaction of the move that earns it (fulfil/state.py's hook): one
             `notifications` row, pending; the unique (order_number, kind) makes a second
             earn a no-op. A crash after the commit leaves the row for the sweep; a crash
             before it leaves neither the move nor the message.
    send  -- after the top-up's settle, on the top-up pool (send_for_order), and by the
             sweep (sweep): claim the row (one conditional UPDATE, rowcount 1 wins, so
             two senders never both send), then, with no transaction open, ask WeChat,
             then settle the row by WeChat's answer:

    pending --claim--> sending --sent (WeChat accepted; one credit spent)------> sent
       ^                  |----43101 (no consent left at WeChat; credits zeroed)-> no_consent
       |                  |----40003 / 40037 / 41030 / 47003, or unfit ------------> failed
       |                  |----no template configured, or no credit -------------> skipped
       \--- -1, 5xx, -----/----the same, the NOTIFY_MAX_ATTEMPTS-th time --------> failed
            no answer (backoff)

A claim sets next_attempt_at STUCK_SECONDS ahead: a row left `sending` by a worker that
died mid-call is due again then. WeChat may have delivered it, and then a second card is
the price of not losing one (with no consent left, WeChat answers 43101 instead). So
"due" is one range on idx_notifications_due: status pending or sending, next_attempt_at
passed. Nothing here reads or writes an order's state: whatever becomes of a message, the
order is as the move left it.

Entry points take `svc` (services.Services: the settings and `messages`, the client).
"""
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from .. import database
from ..clients.wechat_messages import NO_CONSENT, REJECTED, RETRY, SENT, Message
from ..extensions import db
from ..logs import event
from ..models import Notification, OperatorCall, Order, Product, User
from ..timeutil import utcnow
from . import consent, fields, templates

log = logging.getLogger("elife.notify")

_N = Notification.__table__
_O, _P, _U, _CALLS = Order.__table__, Product.__table__, User.__table__, OperatorCall.__table__
# A message's statuses (models.NOTIFICATION_STATUSES); a send's outcome is the status it
# left, or "retry" (pending again, after a backoff).
PENDING, SENDING, FAILED, SKIPPED = "pending", "sending", "failed", "skipped"
# Waits after the 1st, 2nd, ... attempt WeChat answered -1 or 5xx: five attempts span
# about an hour (0, 1, 6, 21, 61 minutes); the last wait repeats if more are allowed.
BACKOFF_SECONDS = (60, 300, 900, 2400)
STUCK_SECONDS = 300


@dataclass
class SweepSummary:
    found: int = 0
    outcomes: dict = field(default_factory=dict)  # outcome -> count (sent, retry, skipped, ...)
    seconds: float = 0.0
    stopped_early: bool = False


def backoff(attempts):
    """Seconds to wait after the `attempts`-th attempt (1-based) before the next."""
    return BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]


# -- earn (in the mover's transaction) -------------------------------------------------------

def earn(conn, order, kind, now=None):
    """The order earned a message of `kind`: its outbox row, on `conn`, in the open
    transaction (the caller commits it with the move). A second earn changes nothing."""
    if kind not in fields.KINDS:
        raise ValueError(f"no such kind: {kind}")
    now = now or utcnow()
    row = {"order_number": order.order_number, "kind": kind, "user_id": order.user_id, "status": PENDING,
           "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now}
    if conn.dialect.name in ("mysql", "mariadb"):
        stmt = mysql.insert(_N).values(**row).on_duplicate_key_update(id=_N.c.id)
    else:
        stmt = sqlite.insert(_N).values(**row).on_conflict_do_nothing(index_elements=["order_number", "kind"])
    conn.execute(stmt)


# -- send ------------------------------------------------------------------------------------

def due(n, now):
    """Pending and its time has come, or left sending (by a sender that never finished)
    STUCK_SECONDS ago."""
    return n.status.in_((PENDING, SENDING)) & (n.next_attempt_at <= now)


def send_for_order(svc, order_number):
    """After the top-up's settle (or a refund's), on the pool: the order's messages due now."""
    return Sender(svc.settings, svc.messages).send_for_order(order_number)


def sweep(svc, max_seconds=30, now=None):
    """The sweep's part: whatever is due, within `max_seconds`."""
    return Sender(svc.settings, svc.messages).sweep(now=now, batch=svc.settings.SWEEP_BATCH,
                                                    max_seconds=max_seconds)


class Sender:
    """Sends what the outbox holds. `client`: clients.wechat_messages.MessageClient."""

    def __init__(self, settings, client):
        self.s = settings
        self.client = client

    def send_for_order(self, order_number):
        """Every message of the order that is due now (after its top-up's settle, on the
        pool). Never raises: the top-up it follows is done whatever happens here."""
        try:
            ids = db.session.connection().execute(
                sa.select(_N.c.id).where(_N.c.order_number == order_number, due(_N.c, utcnow()))
                .order_by(_N.c.id)).scalars().all()
            db.session.commit()
            return [self.send_one(i) for i in ids]
        except Exception as exc:  # noqa: BLE001 -- the sweep will try again; say why
            db.session.rollback()
            event(log, logging.ERROR, "notify_error", order=order_number, error=type(exc).__name__,
                  message=str(exc)[:200])
            return []

    def send_one(self, notification_id, now=None):
        """Claim one row and send it: its outcome, or None when another sender has it."""
        now = now or utcnow()
        attempt = self._claim(notification_id, now)
        if attempt is None:
            return None
        n, order, openid, tmpl, credits = self._read(notification_id)
        if tmpl is None:
            return self._settle(n, attempt, now, SKIPPED, f"no template configured for {n.kind}")
        if credits <= 0:
            return self._settle(n, attempt, now, SKIPPED, "no consent: the customer has no credit for this template",
                                template_id=tmpl.template_id)
        try:
            data = {k: v["value"] for k, v in fields.data(tmpl.fields, self._content(n, order)).items()}
        except fields.Unfit as exc:
            return self._settle(n, attempt, now, FAILED, f"unfit: {exc}", template_id=tmpl.template_id)
        message = Message(touser=openid, template_id=tmpl.template_id, data=data, page=self._page(n.order_number),
                          miniprogram_state=self.s.NOTIFY_MINIPROGRAM_STATE, lang=self.s.NOTIFY_LANG)
        answer = self.client.send(message)  # no transaction open while WeChat answers
        outcome = {SENT: "sent", NO_CONSENT: "no_consent", REJECTED: FAILED}.get(answer.outcome, RETRY)
        if outcome == RETRY and attempt >= self.s.NOTIFY_MAX_ATTEMPTS:
            outcome = FAILED
        return self._settle(n, attempt, now, outcome, answer.said or answer.outcome, template_id=tmpl.template_id,
                            data=data, seqid=answer.seqid)

    def _claim(self, notification_id, now):
        def unit():
            won = db.session.connection().execute(
                _N.update().where(_N.c.id == notification_id, due(_N.c, now))
                .values(status=SENDING, claimed_at=now, attempts=_N.c.attempts + 1, updated_at=now,
                        next_attempt_at=now + timedelta(seconds=STUCK_SECONDS))).rowcount
            attempts = db.session.connection().execute(
                sa.select(_N.c.attempts).where(_N.c.id == notification_id)).scalar() if won == 1 else None
            db.session.commit()
            return attempts
        return database.run_unit(self.s, unit, "notify_claim")

    def _read(self, notification_id):
        conn = db.session.connection()
        n = conn.execute(sa.select(_N).where(_N.c.id == notification_id)).first()
        order = conn.execute(sa.select(_O).where(_O.c.order_number == n.order_number)).first()
        openid = conn.execute(sa.select(_U.c.openid).where(_U.c.id == n.user_id)).scalar()
        tmpl = templates.template(n.kind)
        credits = consent.credits(conn, n.user_id, tmpl.template_id) if tmpl else 0
        db.session.commit()
        return n, order, openid, tmpl, credits

    def _content(self, n, order):
        conn = db.session.connection()
        product = conn.execute(sa.select(_P.c.name).where(
            _P.c.product_operator == order.product_operator, _P.c.recharge_type == order.recharge_type,
            _P.c.product_code == order.product_code)).scalar()
        refusal = None
        if n.kind == "failed_refunded":  # the operator's last definite refusal: "101 the number ..."
            said = conn.execute(sa.select(_CALLS.c.answer).where(
                _CALLS.c.order_number == order.order_number, _CALLS.c.outcome == "failed",
                _CALLS.c.kind.in_(("submit", "resubmit", "status"))).order_by(_CALLS.c.id.desc()).limit(1)).scalar()
            refusal = (said or "").split(" ", 1)[0]
        db.session.commit()
        when = {"recharged": order.recharged_at, "refunded": order.refunded_at}.get(n.kind) or n.created_at
        return fields.Content(phone=order.phone_number, product=product or order.product_code,
                              amount_fen=order.total_fee, time=when, reason=fields.reason_for(n.kind, refusal),
                              order=order.order_number)

    def _page(self, order_number):
        page = self.s.NOTIFY_PAGE.strip()
        if not page:
            return ""
        return f"{page}{'&' if '?' in page else '?'}orderNumber={order_number}"

    def _settle(self, n, attempt, started, outcome, said, template_id=None, data=None, seqid=""):
        """`started`: when the attempt was claimed; the next one is due a backoff after it."""
        now = utcnow()
        values = {"last_error": None if outcome == "sent" else (said or "")[:255], "updated_at": now}
        if template_id:
            values["template_id"] = template_id
        if data is not None:
            values["data"] = json.dumps(data, ensure_ascii=False)[:60_000]
        if outcome == RETRY:
            values.update(status=PENDING, next_attempt_at=started + timedelta(seconds=backoff(attempt)))
        else:
            values.update(status=outcome, next_attempt_at=None)
        if outcome == "sent":
            values["sent_at"] = now

        def unit():
            conn = db.session.connection()
            mine = conn.execute(_N.update().where(_N.c.id == n.id, _N.c.status == SENDING, _N.c.attempts == attempt)
                                .values(**values)).rowcount
            if mine == 1 and outcome == "sent":
                consent.spend_one(conn, n.user_id, template_id, now)
            elif mine == 1 and outcome == "no_consent":
                consent.zero(conn, n.user_id, template_id, now)
            db.session.commit()
            return mine
        database.run_unit(self.s, unit, "notify_settle")
        level = logging.INFO if outcome in ("sent", SKIPPED, RETRY) else logging.WARNING
        event(log, level, f"notify_{outcome}", order=n.order_number, kind=n.kind, attempt=attempt,
              **({"said": said[:200]} if outcome != "sent" and said else {}), **({"seqid": seqid} if seqid else {}))
        return outcome

    # -- the sweep -------------------------------------------------------------------------
    def sweep(self, now=None, batch=100, max_seconds=30):
        """Send whatever is due, oldest first, keyset by id, for at most `max_seconds`."""
        started, summary, last = time.monotonic(), SweepSummary(), 0
        while True:
            at = now or utcnow()
            ids = db.session.connection().execute(
                sa.select(_N.c.id).where(due(_N.c, at), _N.c.id > last).order_by(_N.c.id).limit(batch)
            ).scalars().all()
            db.session.commit()
            for i in ids:
                if time.monotonic() - started > max_seconds:
                    summary.stopped_early = True
                    break
                summary.found += 1
                try:
                    outcome = self.send_one(i, at) or "taken"  # another sender had it
                except Exception as exc:  # noqa: BLE001 -- one row's trouble must not stop the rest
                    db.session.rollback()
                    event(log, logging.ERROR, "notify_error", id=i, error=type(exc).__name__, message=str(exc)[:200])
                    outcome = "error"
                summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
                last = i
            if summary.stopped_early or len(ids) < batch:
                break
        summary.seconds = time.monotonic() - started
        return summary


# -- for the person on duty ------------------------------------------------------------------

def for_order(order_number):
    """The order's messages, oldest first: what the admin page shows."""
    rows = db.session.connection().execute(
        sa.select(_N).where(_N.c.order_number == order_number).order_by(_N.c.id)).mappings().all()
    db.session.commit()
    return [dict(r) for r in rows]


def counts_by_day(since):
    """{(UTC date, status): count} of the messages earned since `since`, in the open
    transaction (idx_notifications_created)."""
    day = sa.func.date(_N.c.created_at)
    rows = db.session.connection().execute(
        sa.select(day, _N.c.status, sa.func.count()).where(_N.c.created_at >= since)
        .group_by(day, _N.c.status)).all()
    return {(str(d), s): c for d, s, c in rows}


def counts():
    """{(kind, status): count} of every message ever earned (idx_notifications_kind_status):
    the metric's counter. Rows are never deleted and a final status never changes, so
    each count only grows."""
    rows = db.session.connection().execute(
        sa.select(_N.c.kind, _N.c.status, sa.func.count()).group_by(_N.c.kind, _N.c.status)).all()
    return {(k, s): c for k, s, c in rows}
