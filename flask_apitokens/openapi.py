"""How the extension's routes describe themselves for the OpenAPI 3.1 document
(built and served by :mod:`flask_apitokens.openapi_document`).

Each module that owns routes describes them next to their code, in a module
dict ``OPENAPI`` (path relative to the API prefix -> OpenAPI path item), built
with the helpers below::

    OPENAPI = {"/authenticate/ldap": {"post": operation(
        "A token for a directory login", tag="issue",
        body=credential_body({"username": TEXT, "password": TEXT}, required=["username", "password"]),
        responses={200: json_response("The new token", ref("IssuedToken"))},
        errors=(400, 401, 413, 415, 429, 503),
    )}}

A module may also describe its tags (``OPENAPI_TAGS``) and give an
``OPENAPI_PREFIX`` (``""`` for absolute paths) that replaces the API prefix.
This module holds no route and imports none: the modules that describe routes
import it.
"""

from __future__ import annotations

import re
from typing import Any

from .web import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH

TEXT: dict[str, Any] = {"type": "string"}
ISO_TIME: dict[str, Any] = {"type": ["string", "null"], "description": "ISO 8601 UTC, e.g. 2027-02-20T12:00:00.000Z"}
PERSON_ID: dict[str, Any] = {"type": ["integer", "string"]}
_NO_NUL = "^[^\\u0000]*$"


def text(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    """A text field as ``web.text_field`` takes it (no NUL; empty means absent)."""
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


def error_responses() -> dict[str, Any]:
    responses = {f"E{code}": json_response(text, ref("Error")) for code, text in ERROR_TEXT.items()}
    responses["E401"]["headers"] = {"WWW-Authenticate": {"schema": TEXT}}
    responses["E429"]["headers"] = {"Retry-After": {"schema": TEXT, "description": "Seconds to wait."}}
    return responses
