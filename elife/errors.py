"""What the business says no with: plain exceptions, each with a stable `code` that
clients and the runbook's greps rely on. Only elife/api/ knows HTTP: api/errors.py
turns these into answers."""


class DomainError(Exception):
    def __init__(self, code, message, retry_after=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, for RateLimited and Unavailable
        self.details = details          # what a program needs beyond the code (price_changed: the price)


class Invalid(DomainError):
    """The request asks for something that cannot be: a bad number, an unknown product."""


class NotFound(DomainError):
    """No such thing, or not the caller's."""


class Forbidden(DomainError):
    """The caller may not do this, however it asks."""


class Conflict(DomainError):
    """The state of the order (or product) does not allow it now."""


class RateLimited(DomainError):
    """Too many; try again in `retry_after` seconds."""


class Unavailable(DomainError):
    """Something we depend on (WeChat, the rate table) cannot serve this now."""
