"""``POST/GET /api/user-token``: Datasentinel's 24-hour user-token JWT.

- ``POST /api/user-token`` with HTTP Basic credentials (username or email, and
  password) answers ``201 {"user-token": "<JWT>"}``: HS256, claims ``iat``,
  ``exp``, ``user``, ``email``, ``database`` (the organization) and ``jti``.
- ``GET /api/user-token?token=<JWT>`` with the same credentials describes one's
  own token: ``{"email", "expire_time", "organization_name", "user"}``.
- The JWT is also a bearer credential (``Authorization: Bearer <JWT>``): the
  token service checks it itself.

The JWT's claims, signing and checking are :mod:`flask_apitokens.usertoken`'s;
this module only reads requests and answers them.
"""

from __future__ import annotations

import binascii
import datetime as dt
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.datastructures import Authorization

from .. import errors
from .. import openapi as oa
from ..models import utcnow
from ..ratelimit import BASIC, rate_limited
from ..state import state
from ..tokeninfo import MAX_CREDENTIAL_LENGTH, USER_TOKEN
from ..usertoken import UserTokenCodec, claims_for
from ..web import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH, issue_options, no_store, read_body
from .userpass import check_password_login

if TYPE_CHECKING:
    from ..state import State

#: The info route's time format (Datasentinel's ``expire_time``), in UTC.
EXPIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


# -- HTTP Basic ------------------------------------------------------------------
def basic_credentials() -> tuple[str, str]:
    """``(login, password)`` from the request's ``Authorization: Basic`` header.
    Anything else (no header, another scheme, not base64, not UTF-8, too long,
    NUL characters, no password) is 401 with a Basic challenge."""
    header = request.headers.get("Authorization", "")
    if not header or len(header) > MAX_CREDENTIAL_LENGTH:
        raise errors.BasicAuthRequired()
    try:
        parsed = Authorization.from_header(header)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        parsed = None
    if parsed is None or parsed.type != "basic":
        raise errors.BasicAuthRequired()
    login, password = parsed.username or "", parsed.password or ""
    if (not login or not password or len(login) > MAX_LOGIN_LENGTH or len(password) > MAX_PASSWORD_LENGTH
            or "\x00" in login or "\x00" in password):
        raise errors.InvalidBasicCredentials()
    return login, password


def basic_user(method: str) -> Any:
    """The active user named by the Basic credentials, or 401 (the same for a
    wrong user and a wrong password)."""
    login, password = basic_credentials()
    try:
        return check_password_login(login, password, method=method)
    except errors.InvalidCredentials:
        raise errors.InvalidBasicCredentials() from None


# -- the routes ------------------------------------------------------------------
class UserTokenViews:
    def __init__(self, codec: UserTokenCodec) -> None:
        self.codec = codec

    @rate_limited(account=BASIC)
    def create(self) -> Response:
        """``POST /api/user-token``: a new JWT for the Basic credentials' owner."""
        user = basic_user("user-token")
        body = read_body()
        st = state()
        issued = st.service.issue(user, via="user-token", kind=USER_TOKEN,
                                  **issue_options(body, default_name="user-token"))
        signed = self.codec.sign(claims_for(issued.info, st.users.profile(user), utcnow()))
        response = jsonify({"user-token": signed})
        response.status_code = 201
        return no_store(response)

    @rate_limited(account=BASIC)
    def describe(self) -> Response:
        """``GET /api/user-token?token=<JWT>``: what one's own token says, or why it is no good."""
        user = basic_user("user-token")
        text = request.args.get("token") or request.args.get("user-token")
        if not text:
            raise errors.BadRequest("The query parameter 'token' (the user-token) is required.",
                                    code="missing_parameter")
        found = self.codec.verify(text, check_expiry=False)
        if found is None:
            raise errors.MalformedUserToken()
        st = state()
        record = st.service.get(found["jti"], kinds=(USER_TOKEN,))
        owner = st.users.user_id(user)
        if record is not None:
            if record.user_id != owner:
                raise errors.NotYourToken()
        elif found.get("user") != st.users.profile(user)["username"]:
            raise errors.NotYourToken()
        now = utcnow()
        expires_at = record.expires_at if record is not None else None
        if "exp" in found:
            expires_at = dt.datetime.fromtimestamp(found["exp"], dt.timezone.utc).replace(tzinfo=None)
        if record is not None and record.revoked_at is not None:
            raise errors.UserTokenRevoked()
        if expires_at is not None and expires_at <= now:
            raise errors.UserTokenExpired()
        if record is None:  # signed by us, not expired, but its record is gone: revoked and purged
            raise errors.UserTokenRevoked()
        return jsonify(
            email=found.get("email"),
            expire_time=expires_at.strftime(EXPIRE_TIME_FORMAT) if expires_at is not None else None,
            organization_name=found.get("database"),
            user=found.get("user"),
        )


def register(blueprint: Blueprint, state: State) -> None:
    """Routed when APITOKENS_USER_TOKEN is on (see ISSUING_METHODS)."""
    views = UserTokenViews(state.service.user_tokens)
    blueprint.add_url_rule("/user-token", "user_token_create", views.create, methods=["POST"])
    blueprint.add_url_rule("/user-token", "user_token_describe", views.describe, methods=["GET"])


#: The routes, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/user-token": {
    "post": oa.operation(
        "A user-token JWT for the HTTP Basic credentials' owner", tag="issue", security=[{"basic": []}],
        body=oa.credential_body(dict(oa.ISSUE_FIELDS), required=[]),
        responses={201: oa.json_response("The JWT (HS256), shown once", {
            "type": "object", "required": ["user-token"], "properties": {"user-token": oa.TEXT}})},
        errors=(400, 401, 413, 415, 429, 503),
    ),
    "get": oa.operation(
        "What one's own user-token says, or why it is no good", tag="issue", security=[{"basic": []}],
        parameters=[{"name": "token", "in": "query", "required": True, "schema": oa.TEXT}],
        responses={200: oa.json_response("The token's owner and expiry (UTC)", {
            "type": "object", "required": ["email", "expire_time", "organization_name", "user"],
            "properties": {"email": {"type": ["string", "null"]}, "expire_time": {"type": ["string", "null"]},
                           "organization_name": {"type": ["string", "null"]}, "user": {"type": ["string", "null"]}}})},
        errors=(400, 401, 403, 413, 415, 429, 503),
    ),
}}
