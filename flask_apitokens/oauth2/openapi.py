"""The OAuth2 server's JSON routes in the OpenAPI document (collected by
:mod:`flask_apitokens.openapi_document`). ``/oauth/authorize`` is left out: it answers with an HTML consent page
or a redirect, not JSON.

What the bodies look like was checked against real requests: Authlib's own
errors are the OAuth shape ``{"error", "error_description"?}`` (RFC 6749 5.2),
while what the extension answers before Authlib runs (413, 429, 503) is the
shared ``{"error", "message"}``.
"""

from __future__ import annotations

from typing import Any

from .. import openapi as oa

#: Paths are absolute (not under the API prefix).
OPENAPI_PREFIX = ""

TAG = "oauth2"
OPENAPI_TAGS: list[dict[str, Any]] = [{
    "name": TAG,
    "description": (
        "The OAuth2 authorization server (RFC 6749 with PKCE, RFC 7009, RFC 7662, RFC 8414). "
        "`GET/POST /oauth/authorize` is not described here: it is the browser side of the flow "
        "(an HTML consent page for a logged-in user, then a redirect to the client's redirect_uri), "
        "not a JSON route."
    ),
}]

#: Client authentication: HTTP Basic with client_id:client_secret (client_secret_basic),
#: or client_id/client_secret in the form (client_secret_post), or, for a public
#: client, client_id alone (none) -- the empty requirement.
CLIENT_AUTH: list[dict[str, list[str]]] = [{"oauth2Client": []}, {}]
CLIENT_FIELDS: dict[str, Any] = {
    "client_id": {**oa.TEXT, "description": "client_secret_post, or a public client (auth method none)."},
    "client_secret": {**oa.TEXT, "description": "client_secret_post only."},
}

OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "RFC 6749 section 5.2.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "pattern": "^[a-z_]+$",
                  "examples": ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                               "unsupported_grant_type", "invalid_scope", "unsupported_token_type"]},
        "error_description": oa.TEXT,
        "error_uri": oa.TEXT,
    },
}
#: Authlib answers an unknown token_type_hint with 401 (its error class is a 401 one).
HINT_401 = " Also unsupported_token_type, for a token_type_hint other than access_token or refresh_token."
NO_STORE = {"Cache-Control": {"schema": oa.TEXT, "description": "no-store"}}


def oauth_errors(bad_request: str, unauthorized: str = "") -> dict[int, Any]:
    return {
        400: oa.json_response(bad_request + " Also invalid_client, for client credentials in "
                              "the form that are not accepted.", OAUTH_ERROR),
        401: oa.json_response("invalid_client: no client credentials where they are needed, or HTTP Basic that is "
                              "not accepted."
                              + unauthorized, OAUTH_ERROR,
                              headers={"WWW-Authenticate": {
                                  "schema": oa.TEXT, "required": False,
                                  "description": "With invalid_client; not with unsupported_token_type."}}),
    }


def form_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


_CODE_GRANT = {
    "type": "object",
    "required": ["grant_type", "code"],
    "properties": {
        "grant_type": {"const": "authorization_code"},
        "code": {**oa.TEXT, "description": "The code from the redirect to redirect_uri (single use)."},
        "redirect_uri": {**oa.TEXT, "description": "Required when the authorization request had one."},
        "code_verifier": {**oa.TEXT, "description": "PKCE (S256); required of public clients."},
        **CLIENT_FIELDS,
    },
}
_REFRESH_GRANT = {
    "type": "object",
    "required": ["grant_type", "refresh_token"],
    "properties": {
        "grant_type": {"const": "refresh_token"},
        "refresh_token": {**oa.TEXT, "description": "Single use: it is rotated; a reused one revokes its family."},
        "scope": {**oa.TEXT, "description": "Space-separated; at most the scopes first granted."},
        **CLIENT_FIELDS,
    },
}
TOKEN_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string", "minLength": 20},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer", "minimum": 0},
        "refresh_token": {"type": "string", "minLength": 20},
        "scope": {**oa.TEXT, "description": "The granted scopes, space-separated."},
    },
}
TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": oa.TEXT,
        "token_type_hint": {"enum": ["access_token", "refresh_token", ""], "description": "Empty: no hint."},
        **CLIENT_FIELDS,
    },
}
INTROSPECTION: dict[str, Any] = {
    "oneOf": [
        {"type": "object", "required": ["active"], "additionalProperties": False,
         "properties": {"active": {"const": False}},
         "description": "Unknown, expired or revoked, or not this client's token."},
        {"type": "object",
         "required": ["active", "client_id", "token_type", "scope", "sub", "iat", "exp", "iss"],
         "properties": {
             "active": {"const": True},
             "client_id": oa.TEXT,
             "token_type": {"enum": ["Bearer", "refresh_token"]},
             "scope": oa.TEXT,
             "sub": oa.TEXT,
             "username": {"type": ["string", "null"]},
             "iat": {"type": "integer"},
             "exp": {"type": ["integer", "null"]},
             "iss": oa.TEXT,
         }},
    ],
}
_URL = {"type": "string", "format": "uri"}
_NAMES = {"type": "array", "items": oa.TEXT}
METADATA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 8414; URLs are built from the request's host.",
    "required": ["issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint",
                 "introspection_endpoint", "scopes_supported", "response_types_supported",
                 "grant_types_supported", "token_endpoint_auth_methods_supported",
                 "code_challenge_methods_supported"],
    "properties": {
        "issuer": _URL, "authorization_endpoint": _URL, "token_endpoint": _URL,
        "revocation_endpoint": _URL, "introspection_endpoint": _URL,
        "scopes_supported": _NAMES,
        "response_types_supported": {"type": "array", "items": {"const": "code"}},
        "grant_types_supported": {"type": "array", "items": {"enum": ["authorization_code", "refresh_token"]}},
        "token_endpoint_auth_methods_supported": _NAMES,
        "revocation_endpoint_auth_methods_supported": _NAMES,
        "introspection_endpoint_auth_methods_supported": _NAMES,
        "code_challenge_methods_supported": {"type": "array", "items": {"const": "S256"}},
    },
}

OPENAPI: dict[str, Any] = {
    "/oauth/token": {"post": oa.operation(
        "Exchange an authorization code, or a refresh token, for tokens", tag=TAG, security=CLIENT_AUTH,
        description="RFC 6749 sections 4.1.3 and 6. Form body only. A confidential client authenticates "
                    "with HTTP Basic (client_id:client_secret) or client_id and client_secret in the form; "
                    "a public client sends client_id and a PKCE code_verifier.",
        body=form_body({"oneOf": [_CODE_GRANT, _REFRESH_GRANT]}),
        responses={
            200: oa.json_response("The new access token and (rotated) refresh token", TOKEN_RESPONSE,
                                  headers=NO_STORE),
            **oauth_errors("invalid_request, invalid_grant (unknown, used or expired code or refresh token), "
                           "unauthorized_client, unsupported_grant_type or invalid_scope."),
        },
        errors=(413, 429, 503),
    )},
    "/oauth/revoke": {"post": oa.operation(
        "Revoke an access or refresh token", tag=TAG, security=CLIENT_AUTH,
        description="RFC 7009. Answers 200 whether or not the token was known. Revoking a refresh token "
                    "revokes every token of its authorization; an access token, only itself.",
        body=form_body(TOKEN_FORM),
        responses={
            200: oa.json_response("Revoked, or nothing to revoke", {"type": "object", "maxProperties": 0}),
            **oauth_errors("invalid_request (no token), invalid_grant (a token of another client) or "
                           "unsupported_token_type (a token_type_hint other than access_token or refresh_token; "
                           "RFC 7009 2.2.1)."),
        },
        errors=(413, 503),
    )},
    "/oauth/introspect": {"post": oa.operation(
        "What a token is, for the client it was issued to", tag=TAG, security=CLIENT_AUTH,
        description="RFC 7662, for confidential clients (HTTP Basic or client_id/client_secret in the "
                    "form) about their own tokens; any other token is {\"active\": false}.",
        body=form_body(TOKEN_FORM),
        responses={
            200: oa.json_response("The token's state", INTROSPECTION, headers=NO_STORE),
            **oauth_errors("invalid_request (no token).", HINT_401),
        },
        errors=(413, 503),
    )},
    "/.well-known/oauth-authorization-server": {"get": oa.operation(
        "The authorization server's metadata", tag=TAG, security=oa.NO_CREDENTIAL,
        responses={200: oa.json_response("RFC 8414 metadata", METADATA)},
    )},
}
