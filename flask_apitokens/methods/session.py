"""``POST /api/token``: a token for the user logged in with a session cookie
(Insight.io's "creation after authentication")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from .. import errors
from .. import openapi as oa
from ..credentials import authenticate_request, session_user
from ..ratelimit import rate_limited
from ..state import state
from ..web import issue_options, read_body, refuse_cross_site, token_response

if TYPE_CHECKING:
    from ..state import State


@rate_limited()
def create_session_token() -> Response:
    body = read_body()
    presented = authenticate_request()
    within: Any = None
    lineage: dict[str, Any] = {}
    if presented is not None:
        # A token may mint another only with the ``tokens`` scope, and never a wider
        # one; the new token is its child: revoked with it, never outliving it.
        if "tokens" not in presented.scopes:
            raise errors.InsufficientScope("Making a token with a token needs the 'tokens' scope.")
        within = presented.scopes
        lineage = {"parent_id": presented.id, "not_after": presented.expires_at}
        user = state().users.get(presented.user_id)
    else:
        refuse_cross_site("make tokens")
        user = session_user()
        if user is None:
            raise errors.Unauthorized("Log in first: this route makes a token for the logged-in user.")
    options = issue_options(body)
    service = state().service
    options["scopes"] = service.check_scopes(options["scopes"], within=within)
    issued = service.issue(user, via="session", **options, **lineage)
    return token_response(issued)


def register(blueprint: Blueprint, state: State) -> None:
    blueprint.add_url_rule("/token", "session_token", create_session_token, methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/token": {"post": oa.operation(
    "A token for the logged-in user", tag="issue", security=oa.SESSION_OR_CREDENTIAL,
    description="A session cookie (not cross-site), or a token with the 'tokens' scope (never a wider one); "
                "a token made with a token is its child: revoked with it, never expiring after it.",
    body=oa.credential_body(dict(oa.ISSUE_FIELDS), required=[]),
    responses={200: oa.json_response("The new token, shown once", oa.ref("IssuedToken"))},
    errors=(400, 401, 403, 413, 415, 429, 503),
)}}
