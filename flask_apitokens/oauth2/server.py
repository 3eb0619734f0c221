"""The Authlib authorization server, wired to the extension's token store.

Access tokens are ``kind="oauth2"`` rows and refresh tokens ``kind="refresh"``
rows of the token table, made by :meth:`TokenService.issue` (digests only), so
protected views accept OAuth2 access tokens like any other token.

Token families: the first refresh token of an authorization is the family's
root; every later token of that authorization has ``parent_id`` = the root's id.
Revoking the root id with :meth:`TokenService.revoke` revokes the whole family,
even after the root itself was rotated (revoked) — that is how a replayed code
or a reused refresh token revokes everything it led to (OAuth 2.0 Security BCP).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Error, TokenMixin, UnsupportedTokenTypeError, grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, request

from .. import errors
from ..models import utcnow
from ..service import OAUTH2, REFRESH, TokenService
from . import clients
from .models import CONFIDENTIAL_AUTH_METHODS, PUBLIC_AUTH_METHODS, OAuth2Models

VIA = "oauth2"


def code_digest(service: TokenService, code: str) -> bytes | None:
    """The stored form of an authorization code (None for text that cannot be one)."""
    if not isinstance(code, str) or not code.isascii() or not 0 < len(code) <= 256:
        return None
    return service.hasher.digest("oauth2-code", code)


class StoredToken(TokenMixin):
    """A token row as Authlib's revocation and introspection endpoints see it."""

    def __init__(self, row: Any) -> None:
        self.row = row

    def check_client(self, client: Any) -> bool:
        return bool(self.row.client_id == client.client_id)

    def get_scope(self) -> str:
        return str(self.row.scopes)

    def get_expires_in(self) -> int:
        if self.row.expires_at is None:
            return 0
        return max(0, int((self.row.expires_at - self.row.created_at).total_seconds()))

    def is_expired(self) -> bool:
        return self.row.expires_at is not None and self.row.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None

    def get_user(self) -> Any:
        return None

    def get_client(self) -> Any:
        return None

    @property
    def family_id(self) -> str:
        return str(self.row.parent_id or self.row.id)


class OAuth2Server(AuthorizationServer):
    """Authlib's Flask server, bound to one application's extension state."""

    def __init__(self, app: Flask, state: Any, models: OAuth2Models) -> None:
        super().__init__()
        self.state = state
        self.service: TokenService = state.service
        self.oauth2_models = models
        self.scopes_supported = sorted(state.settings.scopes)
        self.register_token_generator("default", self.generate_bearer_token)
        self.register_grant(AuthorizationCodeGrant, [PublicClientPKCE(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(TokenRevocation)
        self.register_endpoint(TokenIntrospection)

    # Authlib's configuration hooks; everything is set in __init__ instead.
    def init_app(self, app: Flask, query_client: Any = None, save_token: Any = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def query_client(self, client_id: Any) -> Any:
        return clients.get_client(client_id)

    # -- tokens --------------------------------------------------------------------
    def generate_bearer_token(self, grant_type: str, client: Any, user: Any = None, scope: str | None = None,
                              expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        """Issue the rows (uncommitted; :meth:`save_token` links and commits them)
        and return the plain tokens in the token response."""
        settings = self.state.settings
        scopes = scope_to_list(scope) or []
        lifetime = expires_in or settings["OAUTH2_ACCESS_TOKEN_EXPIRES_IN"] or 3600
        ip = request.remote_addr
        # A refresh replaces the access token it follows: APITOKENS_MAX_TOKENS_PER_USER counts the code grant only.
        try:
            access = self.service.issue(user, via=VIA, kind=OAUTH2, name=client.name, scopes=scopes,
                                        expires_in=lifetime, ip=ip, client_id=client.client_id, commit=False,
                                        replaces=grant_type == "refresh_token")
        except errors.TooManyTokens as exc:
            # RFC 6749's error shape ("error_description"), which OAuth2 clients read.
            raise OAuth2Error(exc.message, status_code=exc.status, error=exc.code) from None
        made, ends = access.info.created_at, access.info.expires_at
        seconds = int((ends - made).total_seconds()) if made and ends else lifetime  # the cap may shorten it
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": access.token,
                                 "expires_in": seconds, "scope": " ".join(scopes)}
        if include_refresh_token:
            refresh = self.service.issue(user, via=VIA, kind=REFRESH, name=client.name, scopes=scopes,
                                         expires_in=settings["OAUTH2_REFRESH_TOKEN_EXPIRES_IN"] or None,
                                         ip=ip, client_id=client.client_id, commit=False)
            token["refresh_token"] = refresh.token
        return token

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Put the new rows in their family and commit them, with the code's
        (or old refresh token's) state, in one transaction."""
        access = self.service.find(token.get("access_token"), (OAUTH2,))
        assert access is not None  # issued a moment ago, in this transaction
        refresh = self.service.find(token.get("refresh_token"), (REFRESH,))
        old_refresh = getattr(request, "refresh_token", None)
        if old_refresh is not None:
            family = old_refresh.family_id
        else:
            family = (refresh or access).id
        for row in (access, refresh):
            if row is not None and row.id != family:
                row.parent_id = family
        code = getattr(request, "authorization_code", None)
        if code is not None:
            code.family_id = family
        if request.user is not None and request.client is not None and code is not None:
            from .grants_store import record_grant

            record_grant(self.state, request.user, request.client, access.scope_list, commit=False)
        self.service.commit()

    def issuer(self) -> str:
        """APITOKENS_OAUTH2_ISSUER, else this request's own address (its Host header)."""
        return self.state.settings["OAUTH2_ISSUER"] or request.host_url.rstrip("/")

    def active_user(self, user_id: Any) -> Any:
        """The user, if they exist and are active by the rule every path shares."""
        user = self.state.users.get(user_id)
        return user if user is not None and self.state.users.is_active(user) else None

    def revoke_family(self, family_id: str, reason: str) -> None:
        self.service.revoke([family_id], reason=reason)


class PublicClientPKCE(CodeChallenge):
    """PKCE with S256 only; a public client must send a challenge, a
    confidential one may."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        payload = grant.request.payload
        challenge = payload.data.get("code_challenge")
        method = payload.data.get("code_challenge_method")
        if grant.request.client.public and not challenge:
            raise InvalidRequestError("Public clients must use PKCE: send code_challenge with S256.")
        if challenge and method != "S256":
            raise InvalidRequestError("Send code_challenge_method=S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, *PUBLIC_AUTH_METHODS]

    @property
    def oauth2(self) -> OAuth2Server:
        return self.server  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: Any) -> None:
        server = self.oauth2
        now = utcnow()
        payload = request.payload.data
        Code = server.oauth2_models.Code
        # Spent and expired codes are kept so that a replay is recognized, but
        # only while what they issued could still be alive.
        keep = dt.timedelta(seconds=server.state.settings["OAUTH2_REFRESH_TOKEN_EXPIRES_IN"])
        server.state.db.session.execute(sa.delete(Code).where(Code.expires_at < now - keep))
        server.state.db.session.add(Code(
            digest=code_digest(server.service, code),
            client_id=request.client.client_id,
            user_id=server.state.users.user_id(request.user),
            redirect_uri=request.payload.redirect_uri or "",
            scopes=request.scope or "",
            code_challenge=payload.get("code_challenge"),
            code_challenge_method=payload.get("code_challenge_method"),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=server.state.settings["OAUTH2_CODE_EXPIRES_IN"]),
        ))
        server.service.commit()

    def query_authorization_code(self, code: str, client: Any) -> Any:
        """Claim the code (single use) in this request's transaction. A code that
        was already exchanged is a replay: its token family is revoked."""
        server = self.oauth2
        digest = code_digest(server.service, code)
        if digest is None:
            return None
        Code = server.oauth2_models.Code
        session = server.state.db.session
        now = utcnow()
        # The conditional UPDATE is what makes the code single-use under
        # concurrency: a second request waits for the first and then finds it used.
        claimed = session.execute(
            sa.update(Code)
            .where(Code.digest == digest, Code.client_id == client.client_id,
                   Code.used_at.is_(None), Code.expires_at > now)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        row = session.execute(sa.select(Code).where(Code.digest == digest)).scalar()
        if claimed == 1:
            return row
        if row is not None and row.used_at is not None and row.client_id == client.client_id:
            session.rollback()
            if row.family_id:
                server.revoke_family(row.family_id, reason="code_replay")
        return None

    def delete_authorization_code(self, authorization_code: Any) -> None:
        pass  # kept, marked used, so that a replay can be recognized

    def authenticate_user(self, authorization_code: Any) -> Any:
        return self.oauth2.active_user(authorization_code.user_id)  # None: invalid_grant


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, *PUBLIC_AUTH_METHODS]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def oauth2(self) -> OAuth2Server:
        return self.server  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        server = self.oauth2
        row = server.service.find(refresh_token, (REFRESH,))
        if row is None:
            return None
        token = StoredToken(row)
        if token.is_revoked():
            # A rotated (or revoked) refresh token came back: someone holds a copy.
            server.revoke_family(token.family_id, reason="refresh_reuse")
            return None
        if token.is_expired() or self.authenticate_user(token) is None:
            return None  # invalid_grant (a missing user would be Authlib's invalid_request)
        return token

    def authenticate_user(self, refresh_token: StoredToken) -> Any:
        return self.oauth2.active_user(refresh_token.row.user_id)

    def issue_token(self, user: Any, refresh_token: StoredToken) -> dict[str, Any]:
        # Rotation: retire the presented refresh token first, conditionally, so
        # that of two concurrent uses only one gets new tokens.
        server = self.oauth2
        T = server.state.models.Token
        retired = server.state.db.session.execute(
            sa.update(T).where(T.id == refresh_token.row.id, T.revoked_at.is_(None))
            .values(revoked_at=utcnow()).execution_options(synchronize_session=False)
        ).rowcount
        if retired != 1:
            server.state.db.session.rollback()
            server.revoke_family(refresh_token.family_id, reason="refresh_reuse")
            raise InvalidGrantError()
        return super().issue_token(user, refresh_token)  # type: ignore[no-any-return]

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        pass  # done in issue_token, in the same transaction as the new tokens


class _StoredTokenLookup:
    """``query_token`` shared by revocation and introspection: our access or
    refresh token, found by its public id and checked against its digest."""

    server: OAuth2Server

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        kinds = {"access_token": (OAUTH2, REFRESH), "refresh_token": (REFRESH, OAUTH2)}.get(
            token_type_hint or "", (OAUTH2, REFRESH))
        row = self.server.service.find(token_string, kinds)
        return StoredToken(row) if row is not None else None


class UnsupportedTokenTypeRequest(UnsupportedTokenTypeError):
    """``unsupported_token_type`` with RFC 7009's 400."""

    status_code = 400


class TokenRevocation(_StoredTokenLookup, RevocationEndpoint):
    """RFC 7009. Revoking a refresh token revokes its whole family; an access
    token, just itself. Public clients may revoke their own tokens."""

    CLIENT_AUTH_METHODS = [*CONFIDENTIAL_AUTH_METHODS, *PUBLIC_AUTH_METHODS]

    def check_params(self, request: Any, client: Any) -> None:
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError:
            # Authlib answers 401 (its class is a ForbiddenError); RFC 7009 2.2.1
            # gives this error to a 400 response, like every error of RFC 6749 5.2.
            raise UnsupportedTokenTypeRequest() from None

    def revoke_token(self, token: StoredToken, request: Any) -> None:
        if token.row.kind == REFRESH:
            self.server.revoke_family(token.family_id, reason="oauth2_revoke")
        else:
            self.server.service.revoke([token.row.id], reason="oauth2_revoke")


class TokenIntrospection(_StoredTokenLookup, IntrospectionEndpoint):
    """RFC 7662, for authenticated (confidential) clients, about their own tokens."""

    CLIENT_AUTH_METHODS = list(CONFIDENTIAL_AUTH_METHODS)

    def check_permission(self, token: StoredToken, client: Any, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        row = token.row
        user = self.server.active_user(row.user_id)
        if user is None:
            return {"active": False}
        profile = self.server.state.users.profile(user)
        return {
            "active": True,
            "client_id": row.client_id,
            "token_type": "Bearer" if row.kind == OAUTH2 else "refresh_token",
            "scope": row.scopes,
            "sub": str(row.user_id),
            "username": profile.get("username"),
            "iat": _epoch(row.created_at),
            "exp": _epoch(row.expires_at) if row.expires_at else None,
            "iss": self.server.issuer(),
        }


def _epoch(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp())
