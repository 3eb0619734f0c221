"""Errors the extension raises, as data: a status, a code, a sentence and headers.

Core code raises these and knows no Flask; the edge
(:func:`flask_apitokens.web.error_response`, installed on the extension's
blueprints and used by the decorators) turns them into
``{"error": code, "message": sentence}`` with the right status, plus
``WWW-Authenticate`` on 401.
"""

from __future__ import annotations

from typing import ClassVar


class APITokensError(Exception):
    """Base of every error the extension answers with."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: str = "The request could not be understood."

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.headers = headers or {}
        super().__init__(self.message)

    def response_headers(self) -> dict[str, str]:
        """The headers its response carries."""
        return self.headers


class BadRequest(APITokensError):
    status = 400
    code = "bad_request"


class InvalidScope(APITokensError):
    status = 400
    code = "invalid_scope"
    message = "A scope asked for is not one this application declares."


class Unauthorized(APITokensError):
    """401: no credential, or one that is not accepted. Always carries WWW-Authenticate."""

    status = 401
    code = "unauthorized"
    message = "A valid credential is required."
    challenge = 'Token realm="api", Bearer realm="api"'

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge, **self.headers}


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = "The credential is not valid, has expired or was revoked."


class ForeignCredential(InvalidToken):
    """A credential that is not in the extension's format (no prefix and checksum
    of ours, not a user-token of ours): the extension's views refuse it like any
    bad token, and Flask-Login's request loader hands it on to the host's own."""


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "The account name or password is wrong."


class BasicAuthRequired(Unauthorized):
    """401 on the routes that take HTTP Basic credentials (``/api/user-token``)."""

    code = "unauthorized"
    message = "HTTP Basic credentials (username or email, and password) are required."
    challenge = 'Basic realm="api"'


class InvalidBasicCredentials(InvalidCredentials):
    challenge = 'Basic realm="api"'


class MalformedUserToken(BadRequest):
    code = "malformed_token"
    message = "The token is not a user-token issued by this server (bad format, algorithm or signature)."


class UserTokenExpired(BadRequest):
    code = "token_expired"
    message = "The token has expired."


class UserTokenRevoked(BadRequest):
    code = "token_revoked"
    message = "The token was revoked."


class Forbidden(APITokensError):
    status = 403
    code = "forbidden"
    message = "This request is not allowed."


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    message = "The credential lacks a scope this request needs."


class AccountDisabled(Forbidden):
    """A logged-in session of a person who was deactivated since (the session is ended)."""

    code = "account_disabled"
    message = "This account is disabled."


class NotYourToken(Forbidden):
    code = "token_not_yours"
    message = "The token belongs to another user."


class NotFound(APITokensError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(APITokensError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state of the resource."


class TokenReused(Conflict):
    """A token that was already rotated was rotated again: a copy of it is in
    someone else's hands, so its whole family was revoked."""

    code = "token_reused"
    message = ("This token was already rotated, so a copy of it is in use elsewhere: "
               "it and every token rotated from it or made with them were revoked.")


class BadGateway(APITokensError):
    """502: a service the request depends on (an OAuth provider) failed or answered nonsense."""

    status = 502
    code = "bad_gateway"
    message = "An upstream service failed to answer properly."


class GatewayTimeout(APITokensError):
    """504: a service the request depends on did not answer in time."""

    status = 504
    code = "gateway_timeout"
    message = "An upstream service did not answer in time."


class PayloadTooLarge(APITokensError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(APITokensError):
    status = 415
    code = "unsupported_media_type"
    message = "The request body must be JSON or a form."


class AccountConflict(APITokensError):
    """An outside identity whose name or email a local account already uses."""

    status = 409
    code = "account_conflict"
    message = "A local account already uses this name or email."


class ServiceUnavailable(APITokensError):
    status = 503
    code = "service_unavailable"
    message = "A service this request needs is unavailable; try again shortly."


class LDAPUnavailable(ServiceUnavailable):
    code = "ldap_unavailable"
    message = "The LDAP directory is unavailable; try again shortly."


class TooManyTokens(APITokensError):
    """APITOKENS_MAX_TOKENS_PER_USER reached. 409: the request is valid and
    allowed, but conflicts with the person's current tokens; revoking one
    resolves it (403 here means a credential lacks a scope)."""

    status = 409
    code = "too_many_tokens"
