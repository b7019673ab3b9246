"""python -m elife.sandbox: serve the fake WeChat and Unitel on SANDBOX_PORT."""
import logging
import sys

from werkzeug.serving import make_server

from ..config import load_settings
from .app import create_sandbox


def main():
    settings = load_settings()
    try:
        app = create_sandbox(settings)
    except RuntimeError as exc:  # its state file is unreadable: one line, not a traceback
        print(f"sandbox: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", settings.SANDBOX_PORT, app, threaded=True)
    print(f"sandbox: WeChat and Unitel on http://127.0.0.1:{settings.SANDBOX_PORT} "
          f"(callbacks to {settings.SANDBOX_SERVICE_URL}; state in {settings.SANDBOX_STATE_FILE})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
