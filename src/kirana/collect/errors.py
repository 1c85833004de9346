"""The collector's request-level failure, shared by the body reader and the service."""

from __future__ import annotations


class CollectError(Exception):
    """A request-level failure with the HTTP status it maps to."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
