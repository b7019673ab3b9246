"""The project's own commands: `flask --app wsgi elife <command>` (scripts set FLASK_APP)."""
import json
import sys

import click
from flask.cli import AppGroup

elife_cli = AppGroup("elife", help="eLife operations: seed data, the sweep, reports.")


@elife_cli.command("seed")
def seed_command():
    """Add the Unitel catalogue and an active MNT->CNY rate (idempotent)."""
    from .seed import seed
    click.echo(f"seed: {seed()} rows added")


@elife_cli.command("sweep")
def sweep_command():
    """Run the compensation sweep once (what cron runs every minute)."""
    from . import database, sweep
    try:
        database.ping()
    except Exception as exc:  # noqa: BLE001 -- cannot run at all: say so and fail
        click.echo(f"sweep: could not run: database unreachable: {str(exc).splitlines()[0][:200]}", err=True)
        sys.exit(1)
    click.echo(sweep.run().line())


@elife_cli.command("report")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--hours", default=24, show_default=True, help="window for success rate and delay")
@click.option("--days", default=7, show_default=True, help="window for anomalies by day")
def report_command(as_json, hours, days):
    """The four monitoring reports; exit code 2 when an alert threshold is crossed."""
    from . import reports
    rep = reports.all_reports(hours=hours, days=days)
    click.echo(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else reports.as_table(rep))
    sys.exit(2 if rep["alert"] else 0)


def register(app):
    app.cli.add_command(elife_cli)
