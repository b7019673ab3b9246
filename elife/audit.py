"""Audit rows: calls to the operator and to WeChat's refund, and decisions about orders."""
from .extensions import db
from .models import OperatorCall, OrderEvent


def record_call(order, kind, outcome, detail="", http_status=None, latency_ms=None):
    db.session.add(OperatorCall(
        order_number=order.order_number, request_id=order.order_number,
        msisdn=order.phone_number, kind=kind, outcome=outcome, http_status=http_status,
        latency_ms=latency_ms, answer=(detail or "")[:1000] or None))


def record_answer(order, kind, answer):
    record_call(order, kind, answer.outcome, f"{answer.code} {answer.message}".strip(),
                answer.http_status, answer.latency_ms)


def record_event(order_number, event, actor, note=None):
    db.session.add(OrderEvent(order_number=order_number, event=event, actor=actor[:64],
                              note=(note or "")[:4000] or None))
