"""``POST/GET /api/user-token``: Datasentinel's 24-hour user-token JWT.

- ``POST /api/user-token`` with HTTP Basic credentials (username or email, and
  password) answers ``201 {"user-token": "<JWT>"}``: HS256, claims ``iat``,
  ``exp``, ``user``, ``email``, ``database`` (the organization) and ``jti``.
- ``GET /api/user-token?token=<JWT>`` with the same credentials describes one's
  own token: ``{"email", "expire_time", "organization_name", "user"}``.
- The JWT is also a bearer credential (``Authorization: Bearer <JWT>``).

The JWT is signed with joserfc (``authlib.jose`` is deprecated). Its ``jti`` is
the public id of a ``user-token`` record in the token table, so the token is
listed, revoked and refused once expired like every other credential: the
signature proves the JWT is ours, the record says whether it is still good.
"""

from __future__ import annotations

import binascii
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from joserfc import jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import OctKey
from werkzeug.datastructures import Authorization

from .. import errors
from .. import openapi as oa
from ..credentials import MAX_CREDENTIAL_LENGTH
from ..models import utcnow
from ..ratelimit import BASIC, rate_limited
from ..service import USER_TOKEN
from ..state import state
from ..web import MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH, issue_options, no_store, read_body
from .userpass import check_password_login

if TYPE_CHECKING:
    from ..config import Settings
    from ..state import State

ALGORITHM = "HS256"
#: The info route's time format (Datasentinel's ``expire_time``), in UTC.
EXPIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Seconds of clock difference allowed between the processes that sign and verify.
LEEWAY = 30
#: 9999-12-31 23:59:59 UTC: a later ``exp`` is not a date.
MAX_TIMESTAMP = 253402300799


class UserTokenClaims(jwt.JWTClaimsRegistry):
    """The claims every JWT of ours carries (``exp`` too, unless user-tokens
    never expire). ``exp`` must be whole seconds; whether it has passed is only
    checked with ``check_expiry`` (the info route says "expired" itself)."""

    def __init__(self, *, check_expiry: bool = True) -> None:
        super().__init__(leeway=LEEWAY, iat={"essential": True}, jti={"essential": True},
                         user={"essential": True})
        self.check_expiry = check_expiry

    def validate_exp(self, value: object) -> None:
        # Whole seconds within what a date can hold (we only ever sign those).
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_TIMESTAMP:
            raise InvalidClaimError("exp", "Claim 'exp' must be a NumericDate value")
        if self.check_expiry:
            super().validate_exp(value)


_CHECKED, _UNCHECKED = UserTokenClaims(), UserTokenClaims(check_expiry=False)


def _timestamp(moment: dt.datetime) -> int:
    """Whole seconds since the epoch of a naive UTC time."""
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp())


class UserTokenCodec:
    """Signs user-token JWTs with the current key, verifies with it and the fallbacks."""

    def __init__(self, key: bytes, fallbacks: Sequence[bytes] = ()) -> None:
        self.signing_key = OctKey.import_key(key)
        self.verifying_keys = [self.signing_key, *(OctKey.import_key(old) for old in fallbacks)]

    @classmethod
    def from_settings(cls, settings: Settings) -> UserTokenCodec:
        return cls(settings.user_token_key, settings.user_token_key_fallbacks)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, self.signing_key, algorithms=[ALGORITHM])

    def verify(self, text: str, *, check_expiry: bool = True) -> dict[str, Any] | None:
        """The claims of ``text`` if it is an HS256 JWT signed with one of our
        keys and carrying our claims (and, with ``check_expiry``, not expired);
        None otherwise. Never raises, whatever the text."""
        if not isinstance(text, str) or len(text) > MAX_CREDENTIAL_LENGTH or text.count(".") != 2:
            return None
        for key in self.verifying_keys:
            try:
                token = jwt.decode(text, key, algorithms=[ALGORITHM])
            except (JoseError, ValueError, TypeError, binascii.Error):
                continue  # a bad signature under this key: try the next one
            claims = token.claims
            if token.header.get("alg") != ALGORITHM:
                return None
            try:
                (_CHECKED if check_expiry else _UNCHECKED).validate(claims)
            except (JoseError, ValueError, TypeError):
                return None
            return claims
        return None

    def bearer_verifier(self, text: str) -> str | None:
        """For ``TokenService.bearer_verifiers``: the record's public id of a
        valid JWT of ours, else None (the service then checks the record)."""
        claims = self.verify(text)
        return claims["jti"] if claims is not None else None


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
        profile = st.users.profile(user)
        info = issued.info
        claims: dict[str, Any] = {
            "iat": _timestamp(info.created_at or utcnow()),
            "user": profile["username"],
            "email": profile["email"],
            "database": profile["organization"],
            "jti": info.id,
        }
        if info.expires_at is not None:
            claims["exp"] = _timestamp(info.expires_at)
        if info.scopes:
            claims["scope"] = " ".join(sorted(info.scopes))
        response = jsonify({"user-token": self.codec.sign(claims)})
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
        claims = self.codec.verify(text, check_expiry=False)
        if claims is None:
            raise errors.MalformedUserToken()
        st = state()
        record = st.service.get(claims["jti"], kinds=(USER_TOKEN,))
        owner = st.users.user_id(user)
        if record is not None:
            if record.user_id != owner:
                raise errors.NotYourToken()
        elif claims.get("user") != st.users.profile(user)["username"]:
            raise errors.NotYourToken()
        now = utcnow()
        expires_at = record.expires_at if record is not None else None
        if "exp" in claims:
            expires_at = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc).replace(tzinfo=None)
        if record is not None and record.revoked_at is not None:
            raise errors.UserTokenRevoked()
        if expires_at is not None and expires_at <= now:
            raise errors.UserTokenExpired()
        if record is None:  # signed by us, not expired, but its record is gone: revoked and purged
            raise errors.UserTokenRevoked()
        return jsonify(
            email=claims.get("email"),
            expire_time=expires_at.strftime(EXPIRE_TIME_FORMAT) if expires_at is not None else None,
            organization_name=claims.get("database"),
            user=claims.get("user"),
        )


def register(blueprint: Blueprint, state: State) -> None:
    codec = UserTokenCodec.from_settings(state.settings)
    # The JWT is a bearer credential wherever the extension's are accepted, switch or not:
    # switching the route off stops new JWTs, it does not strand the ones already out.
    state.service.bearer_verifiers.append(codec.bearer_verifier)
    if state.settings["USER_TOKEN"]:
        views = UserTokenViews(codec)
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
