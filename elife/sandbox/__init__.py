from .app import create_sandbox  # noqa: F401
