"""The Flask edge every route of the extension shares: reading bodies within
limits, the fields every issuing route takes, token responses, and turning
every error into ``{"error", "message"}`` JSON.

It sits below the issuing methods, the views, the OAuth2 server, the OpenAPI
document and the rate limits, and above the core (which raises
:mod:`~flask_apitokens.errors` as data and knows no Flask)."""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from . import dberrors, errors, signals
from .service import DEFAULT, iso
from .state import state
from .users import is_utf8

#: Names of the blueprints made by :func:`json_blueprint`.
JSON_BLUEPRINTS: set[str] = set()

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_STREAMED_BODY = "apitokens.streamed_body"


def error_response(error: errors.APITokensError) -> Response:
    """``{"error": code, "message": sentence}`` with the error's status and
    headers (``WWW-Authenticate`` on every 401)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    provider = app.json
    response = app.response_class(_error_body(provider, app.debug, error.code, error.message),
                                  status=error.status, mimetype=provider.mimetype)
    response.headers.update(error.response_headers())
    return response


@functools.lru_cache(maxsize=512)
def _error_body(provider: Any, debug: bool, code: str, message: str) -> bytes:
    """``jsonify(error=code, message=message)``'s body, made once: a refused
    token must not cost more than an accepted one, and serializing these two
    fields on every refusal cost more than the view's own response (bench/).
    Bounded, since some messages quote what the client sent."""
    return provider.response(error=code, message=message).get_data()  # type: ignore[no-any-return]


def read_body(*, form: bool = True) -> dict[str, Any]:
    """The request body as a dict: JSON (an object), or a form when ``form``.
    An empty body is ``{}``. Raises 400 for a body that does not parse, 415 for
    another content type, 413 (before reading) for one over the size limit."""
    limit = state().settings["MAX_BODY_SIZE"]
    too_large = errors.PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    mimetype = request.mimetype
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large
        # Cached first, so the body can be read again (as a form or not) in one request.
        data = request.get_data(cache=True)
        if form and mimetype in _FORM_TYPES:
            return {key: request.form.get(key) for key in request.form}
    else:
        # A streamed (chunked) body: read one byte past the limit to tell "too large",
        # once per request (the rate limiter reads the account name before the view).
        streamed: bytes | None = request.environ.get(_STREAMED_BODY)
        if streamed is None:
            streamed = request.environ[_STREAMED_BODY] = request.stream.read(limit + 1)
        data = streamed
        if len(data) > limit:
            raise too_large
        if form and mimetype == "application/x-www-form-urlencoded":
            return dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))
        if mimetype == "multipart/form-data" and data:
            raise errors.BadRequest("Send multipart bodies with a Content-Length.", code="length_required")
    if not data:
        return {}
    if mimetype != "application/json" and not mimetype.endswith("+json") and mimetype:
        raise errors.UnsupportedMediaType(
            "Send a JSON body (Content-Type: application/json)" + (" or a form." if form else ".")
        )
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise errors.BadRequest(
            "The body is not valid JSON. (Strings and names need double quotes, not single quotes.)",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise errors.BadRequest("The JSON body must be an object.", code="invalid_json")
    return body


#: Longest account name (an email address can have 320 characters) and password
#: read; longer ones are refused unread. The OpenAPI document states the same.
MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH = 320, 1024


def refused(method: str, login: str | None, error: errors.APITokensError) -> errors.APITokensError:
    """``error``, after telling ``authentication_failed`` receivers (its code is the reason)."""
    signals.authentication_failed.send(state().app, method=method, reason=error.code, login=login)
    return error


def no_store(response: Response) -> Response:
    """A response with a secret in it: never cached."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def text_field(body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 1024) -> str:
    """A string field of ``body``; 400 naming the field when it is missing or not text."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise errors.BadRequest(f"The field {name!r} is required.", code="missing_field")
        return ""
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value or not is_utf8(value):
        raise errors.BadRequest(f"The field {name!r} must be text of at most {max_length} characters.",
                                code="invalid_field")
    return value


def scopes_field(body: dict[str, Any]) -> list[str]:
    """``scopes`` as a list of names: a JSON list, or a space-separated string."""
    value = body.get("scopes", body.get("scope"))
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise errors.BadRequest("scopes must be a list of scope names.", code="invalid_field")


def expires_in_field(body: dict[str, Any]) -> Any:
    """``expires_in`` as whole seconds; absent means the method's default."""
    value = body.get("expires_in")
    if value is None or value == "":
        return DEFAULT
    # ASCII digits only ("²".isdigit() is true, and int() refuses it), and few of them.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3600.0 is a whole number of seconds, as JSON Schema's "integer" says
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > 100 * 365 * 86400:
        raise errors.BadRequest("expires_in must be a positive whole number of seconds.", code="invalid_field")
    return value


def issue_options(body: dict[str, Any], *, default_name: str = "") -> dict[str, Any]:
    """The optional fields every issuing route takes (``name``, ``scopes``,
    ``expires_in``) plus the client address, as keyword arguments for
    :meth:`~flask_apitokens.service.TokenService.issue`. Scopes are checked
    here (400 invalid_scope), before any directory or provider is asked."""
    return {
        "name": text_field(body, "name", required=False, max_length=200) or default_name,
        "scopes": state().service.check_scopes(scopes_field(body)),
        "expires_in": expires_in_field(body),
        "ip": request.remote_addr,
    }


def http_error(error: HTTPException) -> Response:
    """A werkzeug HTTP error as this extension's JSON ({"error", "message"}; Allow on 405)."""
    response = jsonify(error=(error.name or "error").lower().replace(" ", "_"), message=error.description)
    response.status_code = error.code or 500
    if error.code == 405 and error.get_headers():
        response.headers.update({k: v for k, v in error.get_headers() if k == "Allow"})
    return response


def json_routing_errors(app: Flask, prefix: str) -> None:
    """404 and 405 raised while routing belong to no blueprint, and an app-wide
    handler for a status code wins over a blueprint's generic one: answer them as
    JSON under ``prefix`` and in the extension's JSON blueprints, and leave every
    other path to the host's handler."""
    for exception in (NotFound, MethodNotAllowed):
        previous = app.error_handler_spec[None].get(exception.code, {}).get(exception)

        def handler(error: HTTPException, previous: Any = previous) -> Any:
            path = request.path
            if path == prefix or path.startswith(prefix + "/") or request.blueprint in JSON_BLUEPRINTS:
                return http_error(error)
            return previous(error) if previous is not None else error

        app.register_error_handler(exception, handler)


def roll_back_unavailable(error: sa.exc.SQLAlchemyError) -> None:
    """For a blueprint's database error handler: re-raise ``error`` unless the
    database is unavailable (bad SQL is a bug: a 500, not "try again"), and roll
    back the host's session, which the failed statement left unusable."""
    if not dberrors.is_unavailable(error):
        raise error
    state().db.session.rollback()


def _database_error(error: sa.exc.SQLAlchemyError) -> Response:
    roll_back_unavailable(error)
    return error_response(dberrors.unavailable(error, f"{request.method} {request.path}"))


def _limit_body() -> None:
    # Werkzeug then never reads past the limit, even from a chunked body; one byte
    # more than the limit lets read_body tell a body that is too large.
    request.max_content_length = state().settings["MAX_BODY_SIZE"] + 1


def json_blueprint(name: str, import_name: str, **options: Any) -> Blueprint:
    """A blueprint whose every error is JSON and whose bodies are size-limited."""
    blueprint = Blueprint(name, import_name, **options)
    JSON_BLUEPRINTS.add(name)
    blueprint.before_request(_limit_body)
    blueprint.register_error_handler(errors.APITokensError, error_response)
    blueprint.register_error_handler(HTTPException, http_error)
    blueprint.register_error_handler(sa.exc.OperationalError, _database_error)
    blueprint.register_error_handler(sa.exc.InterfaceError, _database_error)
    blueprint.register_error_handler(sa.exc.ProgrammingError, _database_error)
    return blueprint


def token_response(issued: Any, status: int = 200, **extra: Any) -> Response:
    """``{"token", "expiresOn"}`` (plus ``extra``), never cached."""
    response = jsonify(token=issued.token, expiresOn=iso(issued.info.expires_at), **extra)
    response.status_code = status
    return no_store(response)


def is_cross_site(trusted: list[str]) -> bool:
    """True when a browser says this request comes from another site, so a
    cookie-authenticated request must not make or change a credential for its
    visitor. Requests without ``Origin`` (curl, scripts) are not cross-site."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin in trusted:
        return False
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) != (request.scheme, request.host)


def refuse_cross_site(what: str) -> None:
    """403 ``cross_site_request`` for a cookie-authenticated request from another
    site (APITOKENS_TRUSTED_ORIGINS excepted)."""
    if is_cross_site(state().settings["TRUSTED_ORIGINS"]):
        raise errors.Forbidden(f"Cross-site requests cannot {what}.", code="cross_site_request")
