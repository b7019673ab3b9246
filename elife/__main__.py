"""python -m elife settings NAME...: settings as shell assignments (see config.py)."""
import sys

from .config import shell_assignments

if len(sys.argv) < 3 or sys.argv[1] != "settings":
    sys.exit("usage: python -m elife settings NAME...")
print(shell_assignments(sys.argv[2:]))
