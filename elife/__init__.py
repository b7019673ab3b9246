"""eLife backend: mobile top-ups for Mongolian numbers, paid with WeChat Pay."""
import logging
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, cli, database, extensions, logs, services
from .config import REPO_ROOT, load_settings


def create_app(config=None):
    """Build the service. `config` is a dict of settings that win over the environment."""
    settings = load_settings(config).validate()

    app = Flask(__name__, static_folder=None)  # no static files: /static/... is a JSON 404
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(
            settings.DATABASE_URL, settings.DB_CONNECT_TIMEOUT, settings.DB_POOL_RECYCLE),
        MAX_CONTENT_LENGTH=settings.MAX_BODY_BYTES,
    )
    app.extensions["elife"] = services.build(settings)
    if settings.DATABASE_URL.startswith("sqlite:///"):
        Path(settings.DATABASE_URL[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)

    extensions.db.init_app(app)
    app.teardown_appcontext(database.remove_session)  # runs before Flask-SQLAlchemy's own
    extensions.migrate.init_app(app, extensions.db, directory=str(REPO_ROOT / "migrations"))
    with app.app_context():
        database.install_sqlite_pragmas(extensions.db.engine)
        database.install_mysql_branch(extensions.db.engine, settings.DB_MYSQL_BRANCH)

    logs.setup_logging(settings.LOG_LEVEL, settings.LOG_DIR, settings.LOG_FORMAT)
    if settings.TRUSTED_PROXY_COUNT:
        # The client's address and scheme as the last N proxies saw them; what a client
        # writes into these headers itself stays to the left of their entries, unread.
        n = settings.TRUSTED_PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    if settings.TRUST_WX_HEADERS:
        logs.event(logging.getLogger("elife.auth"), logging.WARNING, "trust_wx_headers",
                   "X-WX-OPENID is believed as a login: the service must be reachable only through "
                   "WeChat Cloud Hosting (bind to the platform's private address)")

    api.init_app(app)
    cli.register(app)
    # No wait for the database here: the service (wsgi.py) and the commands that need it
    # (elife/cli.py) wait themselves; an app built for a test or a tool does not.
    return app
