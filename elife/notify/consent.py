"""What a customer allowed: the mini-program posts what wx.requestSubscribeMessage
returned, `{"<templateId>": "accept" | "reject" | "ban" | "filter"}`. Each accept lets
WeChat deliver one later message of that template (a one-time subscription), so it adds
one credit for (customer, template); the sender spends one only when WeChat accepts a
message, and WeChat's 43101 (nothing left) zeroes them. Reject, ban (the template is
banned by the platform) and filter (dropped for a duplicate title) are recorded as the
last choice and add nothing; a reject does not take back credits given before (WeChat
keeps them too)."""
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from ..errors import Invalid
from ..extensions import db
from ..models import NotificationConsent
from ..timeutil import utcnow
from . import templates

_C = NotificationConsent.__table__
CHOICES = ("accept", "reject", "ban", "filter")
MAX_TEMPLATES = 10   # wx.requestSubscribeMessage asks for at most 5 at once
MAX_CREDITS = 100    # per customer and template: a client posting "accept" in a loop gains nothing


@dataclass(frozen=True)
class Consent:
    kind: str
    template_id: str
    credits: int
    last_choice: str | None
    chosen_at: object


def check(results):
    """The `results` object as given; Invalid for anything else. {template_id: choice}."""
    if not isinstance(results, dict) or not results:
        raise Invalid("invalid_consent", 'send {"results": {"<templateId>": "accept" | "reject" | "ban" | "filter"}}')
    if len(results) > MAX_TEMPLATES:
        raise Invalid("invalid_consent", f"at most {MAX_TEMPLATES} templates at once")
    for template_id, choice in results.items():
        if not isinstance(template_id, str) or not templates.TEMPLATE_ID.fullmatch(template_id):
            raise Invalid("invalid_consent", "a template id is 1 to 64 letters, digits, - or _")
        if choice not in CHOICES:
            raise Invalid("invalid_consent", f"{template_id}: the choice must be one of {', '.join(CHOICES)}")
    known = templates.known_ids()
    unknown = sorted(t for t in results if t not in known)
    if unknown:
        raise Invalid("unknown_template", "not a template of ours: " + ", ".join(unknown)[:300])
    return results


def record(user_id, results):
    """Credit each accept, note each choice; committed. The customer's consents after it."""
    check(results)
    now = utcnow()
    conn = db.session.connection()
    for template_id, choice in sorted(results.items()):
        add = 1 if choice == "accept" else 0
        conn.execute(_upsert(conn.dialect.name, user_id, template_id, choice, add, now))
    db.session.commit()
    return consents(user_id)


def _upsert(dialect, user_id, template_id, choice, add, now):
    """One statement, so two posts at once (two taps) both count."""
    row = {"user_id": user_id, "template_id": template_id, "credits": add, "last_choice": choice,
           "chosen_at": now, "created_at": now, "updated_at": now}
    grown = sa.func.min if dialect == "sqlite" else sa.func.least
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(_C).values(**row)
        return stmt.on_duplicate_key_update(
            credits=grown(_C.c.credits + add, MAX_CREDITS), last_choice=choice, chosen_at=now, updated_at=now)
    stmt = sqlite.insert(_C).values(**row)
    return stmt.on_conflict_do_update(
        index_elements=["user_id", "template_id"],
        set_={"credits": grown(_C.c.credits + add, MAX_CREDITS), "last_choice": choice, "chosen_at": now,
              "updated_at": now})


def consents(user_id):
    """The customer's consent for every configured kind (credits 0 where none was given)."""
    conn = db.session.connection()
    rows = {r.template_id: r for r in conn.execute(
        sa.select(_C.c.template_id, _C.c.credits, _C.c.last_choice, _C.c.chosen_at).where(_C.c.user_id == user_id))}
    out = []
    for kind, t in sorted(templates.all_templates().items()):
        r = rows.get(t.template_id)
        out.append(Consent(kind, t.template_id, r.credits if r else 0, r.last_choice if r else None,
                           r.chosen_at if r else None))
    db.session.commit()
    return out


def credits(conn, user_id, template_id):
    return conn.execute(sa.select(_C.c.credits).where(
        _C.c.user_id == user_id, _C.c.template_id == template_id)).scalar() or 0


def spend_one(conn, user_id, template_id, now):
    """WeChat accepted a message: one credit fewer (never below 0)."""
    conn.execute(_C.update().where(_C.c.user_id == user_id, _C.c.template_id == template_id, _C.c.credits > 0)
                 .values(credits=_C.c.credits - 1, updated_at=now))


def zero(conn, user_id, template_id, now):
    """WeChat said 43101: it holds no consent of this customer's for the template."""
    conn.execute(_C.update().where(_C.c.user_id == user_id, _C.c.template_id == template_id)
                 .values(credits=0, updated_at=now))
