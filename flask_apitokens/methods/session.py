"""``POST /api/token``: a token for the user logged in with a session cookie
(Insight.io's "creation after authentication")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request
from flask_login import current_user

from .. import errors
from .. import openapi as oa
from ..credentials import authenticate_request, state
from ..ratelimit import rate_limited
from ..views.common import issue_options, read_body, token_response

if TYPE_CHECKING:
    from ..extension import State


def is_cross_site(trusted: list[str]) -> bool:
    """True when a browser says this request comes from another site, so a
    cookie-authenticated request must not mint a token for its visitor.
    Requests without ``Origin`` (curl, scripts) are not cross-site."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin in trusted:
        return False
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) != (request.scheme, request.host)


@rate_limited()
def create_session_token() -> Response:
    body = read_body()
    presented = authenticate_request()
    settings = state().settings
    within: Any = None
    if presented is not None:
        # A token may mint another only with the ``tokens`` scope, and never a wider one.
        if "tokens" not in presented.scopes:
            raise errors.InsufficientScope("Making a token with a token needs the 'tokens' scope.")
        within = presented.scopes
        user = state().users.get(presented.user_id)
    else:
        if is_cross_site(settings["TRUSTED_ORIGINS"]):
            raise errors.Forbidden("Cross-site requests cannot make tokens.", code="cross_site_request")
        if not current_user.is_authenticated:
            raise errors.Unauthorized("Log in first: this route makes a token for the logged-in user.")
        user = current_user._get_current_object()
    options = issue_options(body)
    service = state().service
    options["scopes"] = service.check_scopes(options["scopes"], within=within)
    issued = service.issue(user, via="session", **options)
    return token_response(issued)


def register(blueprint: Blueprint, state: State) -> None:
    if state.settings["SESSION_TOKENS"]:
        blueprint.add_url_rule("/token", "session_token", create_session_token, methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/token": {"post": oa.operation(
    "A token for the logged-in user", tag="issue", security=oa.SESSION_OR_CREDENTIAL,
    description="A session cookie (not cross-site), or a token with the 'tokens' scope (never a wider one).",
    body=oa.credential_body(dict(oa.ISSUE_FIELDS), required=[]),
    responses={200: oa.json_response("The new token, shown once", oa.ref("IssuedToken"))},
    errors=(400, 401, 403, 413, 415, 429, 503),
)}}
