"""Does the database carry the schema this code expects? The seed's verification step
(DESC orders, SHOW INDEX FROM orders) as one command: `flask elife check-schema`."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from .extensions import db


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
        for diff in compare_metadata(ctx, db.metadata):
            out.append(_describe(diff))
    return out


def _describe(diff):
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind == "add_column":
        return f"missing column {diff[2]}.{diff[3].name}"
    if kind == "remove_column":
        return f"unexpected column {diff[2]}.{diff[3].name}"
    if kind == "add_index":
        return f"missing index {diff[1].name} on {diff[1].table.name}"
    if kind == "remove_index":
        return f"unexpected index {diff[1].name} on {diff[1].table.name}"
    if kind == "add_table":
        return f"missing table {diff[1].name}"
    if kind == "remove_table":
        return f"unexpected table {diff[1].name}"
    return f"schema differs: {diff!r}"[:300]
