"""python -m elife.sandbox: serve the fake WeChat and Unitel on SANDBOX_PORT."""
import logging
import sys

from werkzeug.serving import make_server

from ..config import load_settings
from .app import create_sandbox


def main():
    settings = load_settings()
    app = create_sandbox(settings)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", settings.SANDBOX_PORT, app, threaded=True)
    print(f"sandbox: WeChat and Unitel on http://127.0.0.1:{settings.SANDBOX_PORT} "
          f"(callbacks to {settings.SANDBOX_SERVICE_URL})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
