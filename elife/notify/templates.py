"""Which template says each kind of message, and which of our values goes into which of
its fields: chosen by the merchant in the mini-program console (订阅消息 -> 我的模板),
configured without code (`flask elife notify template set KIND TEMPLATE_ID --field
KEY=VALUE ...`), kept in `notification_templates`.

A template is checked when it is set, not when a message is sent: every key must name a
WeChat field type and every value must be one that type can say (notify/fields.py), so a
mistake shows at the command, not as 47003 on every customer's message."""
import json
import re
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import Invalid
from ..extensions import db
from ..models import NotificationTemplate
from ..timeutil import utcnow
from . import fields

_T = NotificationTemplate.__table__
TEMPLATE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")  # WeChat's are 43 base64url characters
MAX_FIELDS = 20


@dataclass(frozen=True)
class Template:
    kind: str
    template_id: str
    fields: dict  # {key: value name}, in the order given
    updated_by: str | None = None
    updated_at: object = None


def parse_fields(pairs):
    """['thing1=product', 'amount2=amount'] -> {'thing1': 'product', 'amount2': 'amount'};
    Invalid naming every pair that is wrong."""
    out, problems = {}, []
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            problems.append(f"{pair!r}: write KEY=VALUE (thing1=product)")
            continue
        if key in out:
            problems.append(f"{key}: given twice")
            continue
        out[key] = value
    if problems:
        raise Invalid("invalid_template_field", "; ".join(problems))
    return out


def check(kind, template_id, field_map):
    """Invalid unless the template can be used as given."""
    if kind not in fields.KINDS:
        raise Invalid("invalid_kind", f"kind must be one of {', '.join(fields.KINDS)}, not {kind!r}")
    if not isinstance(template_id, str) or not TEMPLATE_ID.fullmatch(template_id):
        raise Invalid("invalid_template_id", "a template id is 1 to 64 letters, digits, - or _ "
                                             "(as the mini-program console shows it)")
    if not field_map:
        raise Invalid("invalid_template_field", "a template needs at least one --field KEY=VALUE")
    if len(field_map) > MAX_FIELDS:
        raise Invalid("invalid_template_field", f"at most {MAX_FIELDS} fields")
    problems = [why for key, value in field_map.items() if (why := fields.fits(key, value))]
    if problems:
        raise Invalid("invalid_template_field", "; ".join(problems))


def set_template(kind, template_id, field_map, actor):
    """Configure (or replace) a kind's template. Committed. Messages already sent keep the
    template they were sent with; credits are per template, so customers asked for the
    old one must be asked again for the new one."""
    check(kind, template_id, field_map)
    now = utcnow()
    values = {"template_id": template_id, "fields": json.dumps(field_map, ensure_ascii=False),
              "updated_by": (actor or "")[:64] or None, "updated_at": now}
    conn = db.session.connection()
    if not conn.execute(_T.update().where(_T.c.kind == kind).values(**values)).rowcount:
        conn.execute(_T.insert().values(kind=kind, **values))
    db.session.commit()
    return template(kind)


def _as_template(row):
    try:
        field_map = json.loads(row.fields)
    except ValueError:
        field_map = {}
    return Template(row.kind, row.template_id, field_map if isinstance(field_map, dict) else {},
                    row.updated_by, row.updated_at)


def all_templates():
    """{kind: Template} of the kinds configured."""
    rows = db.session.connection().execute(sa.select(_T)).all()
    return {row.kind: _as_template(row) for row in rows}


def template(kind):
    row = db.session.connection().execute(sa.select(_T).where(_T.c.kind == kind)).first()
    return _as_template(row) if row else None


def known_ids():
    """{template_id: [kinds]}: what a consent may name."""
    out = {}
    for t in all_templates().values():
        out.setdefault(t.template_id, []).append(t.kind)
    return out
