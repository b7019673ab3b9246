"""python -m elife.config_env NAME...: print settings as shell assignments, so shell
scripts read the same values (environment, .env, defaults) as the service."""
import shlex
import sys

from .config import load_settings


def main(names):
    s = load_settings()
    for name in names:
        print(f"{name}={shlex.quote(str(getattr(s, name)))}")


if __name__ == "__main__":
    main(sys.argv[1:])
