"""Does the database carry the schema this code expects? The seed's verification step
(DESC orders, SHOW INDEX FROM orders) as one command: `flask elife check-schema`."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from ..extensions import db


def problems():
    """A list of plain sentences; empty when the schema is what the code expects."""
    config = current_app.extensions["migrate"].migrate.get_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    out = []
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        current = ctx.get_current_revision()
        if current != head:
            out.append(f"migrations: database is at {current or 'nothing'}, code expects {head} "
                       "(run: flask db upgrade)")
        diffs = compare_metadata(ctx, db.metadata)
    # Alembic reports an index whose columns (or uniqueness) changed as the database's
    # removed and the code's added, under one name: say it once, as what it is.
    indexes = {}  # (table, name) -> {"remove_index": the database's, "add_index": the code's}
    for diff in diffs:
        if isinstance(diff, tuple) and diff[0] in ("add_index", "remove_index"):
            indexes.setdefault((diff[1].table.name, diff[1].name), {})[diff[0]] = diff[1]
    said = set()
    for diff in diffs:
        is_index = isinstance(diff, tuple) and diff[0] in ("add_index", "remove_index")
        key = (diff[1].table.name, diff[1].name) if is_index else None
        if key is not None and len(indexes[key]) == 2:
            if key not in said:
                said.add(key)
                out.append(f"index {key[1]} on {key[0]} differs from the code's: database "
                           f"{_shown(indexes[key]['remove_index'])}, code {_shown(indexes[key]['add_index'])}")
            continue
        out.append(_describe(diff))
    return out


def _shown(index):
    cols = ", ".join(getattr(c, "name", str(c)) for c in index.expressions)
    return f"({cols}){' unique' if index.unique else ''}"


_WORDS = {"add": "missing", "remove": "unexpected"}


def _describe(diff):
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(_describe(d) for d in diff)
    verb, _, kind = diff[0].partition("_")
    word = _WORDS.get(verb)
    if word and kind == "column":
        return f"{word} column {diff[2]}.{diff[3].name}"
    if word and kind == "index":
        return f"{word} index {diff[1].name} on {diff[1].table.name}"
    if word and kind == "table":
        return f"{word} table {diff[1].name}"
    return f"schema differs: {diff!r}"[:300]
