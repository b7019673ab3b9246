"""gunicorn wsgi:app (and FLASK_APP=wsgi for the flask commands)."""
import sys

from elife import create_app
from elife.config import ConfigError

try:
    app = create_app()
except ConfigError as e:  # one line naming every missing setting, not a traceback
    sys.exit(f"elife: cannot start: {e}")
