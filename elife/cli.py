"""The project's own commands: `flask --app wsgi elife <command>`."""
import click
from flask.cli import AppGroup

elife_cli = AppGroup("elife", help="eLife operations: seed data, sweep, reports.")


@elife_cli.command("seed")
def seed_command():
    """Add the Unitel catalogue and an active MNT->CNY rate (idempotent)."""
    from .seed import seed
    click.echo(f"seed: {seed()} rows added")


def register(app):
    app.cli.add_command(elife_cli)
