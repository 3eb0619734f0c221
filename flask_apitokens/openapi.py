"""The OpenAPI 3.1 document of the extension's JSON routes, served at
``<prefix>/openapi.json``.

Each module that owns routes describes them next to their code, in a module
dict ``OPENAPI`` (path relative to the API prefix -> OpenAPI path item), built
with the helpers below::

    OPENAPI = {"/authenticate/ldap": {"post": operation(
        "A token for a directory login", tag="issue",
        body=credential_body({"username": TEXT, "password": TEXT}, required=["username", "password"]),
        responses={200: json_response("The new token", ref("IssuedToken"))},
        errors=(400, 401, 413, 415, 429, 503),
    )}}

:func:`build` collects the ``OPENAPI`` (and tag descriptions, ``OPENAPI_TAGS``) of
:mod:`flask_apitokens.views.api` and of every module in its ``METHODS``, plus :data:`OTHER_MODULES` (whose
``OPENAPI_PREFIX``, ``""`` for absolute paths, replaces the API prefix), and keeps
only the operations the application really serves (a route switched off is
not in the document).
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, jsonify

if TYPE_CHECKING:
    from flask import Flask

#: Modules outside ``METHODS`` that describe routes (dotted names), e.g. the OAuth2 server's views.
OTHER_MODULES: tuple[str, ...] = ("flask_apitokens.oauth2.views", "flask_apitokens.views.leaks")

TEXT: dict[str, Any] = {"type": "string"}
ISO_TIME: dict[str, Any] = {"type": ["string", "null"], "description": "ISO 8601 UTC, e.g. 2027-02-20T12:00:00.000Z"}
PERSON_ID: dict[str, Any] = {"type": ["integer", "string"]}
_NO_NUL = "^[^\\u0000]*$"


def text(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    """A text field as ``views.common.text_field`` takes it (no NUL; empty means absent)."""
    return {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": _NO_NUL}

#: What every error status means, for the shared responses.
ERROR_TEXT = {
    400: "The body or a field is not acceptable (invalid_json, missing_field, invalid_field, invalid_scope...).",
    401: "No credential, or one that is not accepted; carries WWW-Authenticate.",
    403: "The credential may not do this (insufficient_scope, cross_site_request).",
    404: "No such resource.",
    409: "A conflict with the current state: an outside account with a local one (account_conflict), "
         "a token rotated again (token_reused: its family was revoked), or the person already has "
         "APITOKENS_MAX_TOKENS_PER_USER live tokens (too_many_tokens).",
    413: "The body is larger than APITOKENS_MAX_BODY_SIZE; it is not read.",
    415: "The body is neither JSON nor a form (or not JSON where only JSON is taken).",
    429: "Too many attempts from this address or for this account; see Retry-After.",
    502: "An outside service answered badly.",
    503: "The token store (or another service the route needs) is unavailable; try again shortly.",
    504: "An outside service did not answer in time.",
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string", "pattern": "^[a-z0-9_]+$"}, "message": TEXT},
    },
    "IssuedToken": {
        "type": "object",
        "required": ["token", "expiresOn"],
        "properties": {"token": {"type": "string", "minLength": 20}, "expiresOn": ISO_TIME},
    },
    "TokenInfo": {
        "type": "object",
        "required": ["id", "name", "kind", "via", "scopes", "createdOn", "lastUsedOn", "expiresOn"],
        "properties": {
            "id": TEXT, "name": TEXT, "kind": {"enum": ["token", "key", "user-token", "oauth2"]}, "via": TEXT,
            "scopes": {"type": "array", "items": TEXT},
            "createdOn": ISO_TIME, "lastUsedOn": ISO_TIME, "expiresOn": ISO_TIME,
            "recentUses": {
                "description": "In GET /tokens only: up to 5 most recent distinct client addresses, newest first.",
                "type": "array", "maxItems": 5, "items": {
                    "type": "object", "required": ["ip", "userAgent", "lastUsedOn"],
                    "properties": {"ip": {"type": ["string", "null"]}, "userAgent": {"type": ["string", "null"]},
                                   "lastUsedOn": ISO_TIME}}},
        },
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "token": {"type": "apiKey", "in": "header", "name": "Authorization",
              "description": "`Authorization: token X:XXX` (an API token)."},
    "key": {"type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`Authorization: key X:XXX` (an API key)."},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "Any token the extension issued, as an RFC 6750 bearer token."},
    "basic": {"type": "http", "scheme": "basic", "description": "HTTP Basic: a username (or email) and password."},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "The host application's Flask-Login session cookie."},
    "oauth2Client": {"type": "http", "scheme": "basic",
                     "description": "An OAuth2 client: HTTP Basic with client_id and client_secret."},
}
#: ``security`` of a route that accepts a session cookie or any credential.
SESSION_OR_CREDENTIAL: list[dict[str, list[str]]] = [{"session": []}, {"token": []}, {"key": []}, {"bearer": []}]
#: ``security`` of a route that takes no credential (it takes a password instead).
NO_CREDENTIAL: list[dict[str, list[str]]] = [{}]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def credential_body(properties: dict[str, Any], *, required: list[str], form: bool = True) -> dict[str, Any]:
    """A request body of JSON (and, with ``form``, a URL-encoded form) with these
    fields; the body is required when a field is."""
    schema = {"type": "object", "required": required, "properties": properties}
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": _form_schema(schema)}
    return {"required": bool(required), "content": content}


def password_login_body(login: str, *, form: bool = True) -> dict[str, Any]:
    """The body of a route that takes an account name (``login``) and a password,
    plus the optional issuing fields."""
    from .views.common import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH

    return credential_body({login: text(MAX_LOGIN_LENGTH, min_length=1),
                            "password": text(MAX_PASSWORD_LENGTH, min_length=1),
                            **ISSUE_FIELDS}, required=[login, "password"], form=form)


#: The optional fields every issuing route takes.
ISSUE_FIELDS: dict[str, Any] = {
    # null or "" means "not given", as in a form.
    "name": {"oneOf": [text(200), {"type": "null"}]},
    "scopes": ref("Scopes"),
    "expires_in": {
        "description": "Seconds (capped by APITOKENS_MAX_LIFETIME); digits in a string too, as forms send them.",
        "oneOf": [{"type": "integer", "minimum": 1, "maximum": 100 * 365 * 86400},
                  {"type": "string", "pattern": "^(0*[1-9][0-9]{0,8})?$"}, {"type": "null"}],
    },
}


def _form_schema(schema: Any) -> Any:
    """A form has no null (it would arrive as the text "null"): the same schema without it."""
    if isinstance(schema, list):
        return [_form_schema(item) for item in schema if item != {"type": "null"}]
    if not isinstance(schema, dict):
        return schema
    if schema.get("$ref") == "#/components/schemas/Scopes":
        return ref("FormScopes")
    return {key: _form_schema(value) for key, value in schema.items()}


def scopes_schema(names: list[str], *, nullable: bool = True) -> dict[str, Any]:
    """The scopes this application declares, as a list or a space-separated string."""
    one = "|".join(re.escape(name) for name in sorted(names))
    return {
        "description": "Scope names the application declares, as a list or space-separated.",
        "oneOf": [
            {"type": "array", "items": {"enum": sorted(names)}},
            {"type": "string", "pattern": f"^ *(({one}) +)*({one})? *$"},
        ] + ([{"type": "null"}] if nullable else []),
    }


def operation(summary: str, *, tag: str, responses: dict[int, Any], errors: tuple[int, ...] = (),
              body: dict[str, Any] | None = None, security: list[dict[str, list[str]]] | None = None,
              parameters: list[dict[str, Any]] | None = None, description: str | None = None) -> dict[str, Any]:
    """One operation; ``errors`` are statuses answered with the shared Error body."""
    all_responses = {str(code): value for code, value in responses.items()}
    for code in errors:
        all_responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": all_responses}
    if description:
        op["description"] = description
    if body is not None:
        op["requestBody"] = body
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    return op


def _error_responses() -> dict[str, Any]:
    responses = {f"E{code}": json_response(text, ref("Error")) for code, text in ERROR_TEXT.items()}
    responses["E401"]["headers"] = {"WWW-Authenticate": {"schema": TEXT}}
    responses["E429"]["headers"] = {"Retry-After": {"schema": TEXT, "description": "Seconds to wait."}}
    return responses


_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    """``/api/tokens/<token_id>`` -> ``/api/tokens/{token_id}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) of every rule the application serves."""
    served = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((openapi_path(rule.rule), method.lower()))
    return served


def _modules() -> list[Any]:
    from .views import api

    modules = [sys.modules[__name__], api]
    modules += [importlib.import_module(f"flask_apitokens.methods.{name}") for name in api.METHODS]
    modules += [importlib.import_module(name) for name in OTHER_MODULES]
    return modules


def build(app: Flask) -> dict[str, Any]:
    """The document for ``app``: only the operations it serves."""
    settings = app.extensions["apitokens"].settings
    served = served_operations(app)
    paths: dict[str, Any] = {}
    tags: list[dict[str, Any]] = []
    used_tags: set[str] = set()
    for module in _modules():
        prefix = getattr(module, "OPENAPI_PREFIX", settings["URL_PREFIX"])
        # A module may describe its tags (``OPENAPI_TAGS``); only tags in use are kept.
        tags += getattr(module, "OPENAPI_TAGS", [])
        for path, item in getattr(module, "OPENAPI", {}).items():
            full = prefix + path
            for method, op in item.items():
                if (full, method) in served:
                    paths.setdefault(full, {})[method] = op
                    used_tags.update(op.get("tags", ()))
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-apitokens",
            "version": "1",
            "description": "API access tokens: issuing, checking, listing, rotating and revoking them.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, "Scopes": scopes_schema(list(settings.scopes)),
                        "FormScopes": scopes_schema(list(settings.scopes), nullable=False)},
            "responses": _error_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    if described := [tag for tag in tags if tag["name"] in used_tags]:
        document["tags"] = described
    return document


def serve() -> Response:
    """``GET <prefix>/openapi.json``."""
    return jsonify(build(current_app._get_current_object()))  # type: ignore[attr-defined]


#: This module's own route, collected like any other.
OPENAPI: dict[str, Any] = {
    "/openapi.json": {"get": operation(
        "This document", tag="meta", security=NO_CREDENTIAL,
        responses={200: json_response("The OpenAPI 3.1 document", {"type": "object", "required": ["openapi"]})},
    )},
}
