"""gunicorn wsgi:app (and FLASK_APP=wsgi for the flask commands)."""
import os
import sys

from elife import create_app, database, services
from elife.config import ConfigError

_FLASK_COMMAND = os.environ.get("FLASK_RUN_FROM_CLI") == "true"

try:
    app = create_app()
except ConfigError as e:
    # One line naming every missing setting, not a traceback. In a gunicorn worker, exit 3
    # (WORKER_BOOT_ERROR): the master then stops instead of respawning workers forever.
    print(f"elife: cannot start: {e}", file=sys.stderr, flush=True)
    sys.exit(1 if _FLASK_COMMAND else 3)

if not _FLASK_COMMAND:  # a flask command waits for the database itself, if it needs it
    with app.app_context():  # once per worker, at its start (logs 数据库连接成功)
        services.say_wechat_path(app.config["SETTINGS"])
        database.wait_for_database(app.config["SETTINGS"])
