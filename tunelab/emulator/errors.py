"""Google API errors as the Generative Language service sends them.

Every error travels as ``{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}``
with the matching HTTP status, because that exact shape is what makes the unmodified SDKs raise
their real exception classes (``google.api_core.exceptions.BadRequest`` / ``NotFound`` /
``Conflict`` for google-generativeai, ``google.genai.errors.ClientError`` for google-genai).
Messages name the offending field with its proto path, the way the real service does.
"""

from __future__ import annotations

import json


class ApiError(Exception):
    """Base class: an HTTP status code, a google.rpc status name and a message."""

    code: int = 500
    status: str = "INTERNAL"
    grpc_code: int = 13

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


class InvalidArgument(ApiError):
    code, status, grpc_code = 400, "INVALID_ARGUMENT", 3


class FailedPrecondition(ApiError):
    code, status, grpc_code = 400, "FAILED_PRECONDITION", 9


class Unauthenticated(ApiError):
    code, status, grpc_code = 401, "UNAUTHENTICATED", 16


class PermissionDenied(ApiError):
    code, status, grpc_code = 403, "PERMISSION_DENIED", 7


class NotFound(ApiError):
    code, status, grpc_code = 404, "NOT_FOUND", 5


class AlreadyExists(ApiError):
    code, status, grpc_code = 409, "ALREADY_EXISTS", 6


class Internal(ApiError):
    code, status, grpc_code = 500, "INTERNAL", 13


class Unimplemented(ApiError):
    code, status, grpc_code = 501, "UNIMPLEMENTED", 12
