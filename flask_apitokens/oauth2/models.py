"""The OAuth2 server's tables, on the host's Flask-SQLAlchemy ``db``.

Built once per ``db`` (its metadata), like :mod:`flask_apitokens.models`, so the
host's ``db.create_all()`` or migrations see them. Secrets (client secrets,
authorization codes) are kept as digests only. The model classes implement the
methods Authlib's grants and endpoints call (``ClientMixin``, ``AuthorizationCodeMixin``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin

from ..models import Models, utcnow
from ..state import state

#: Authentication methods at the token endpoint, by client type.
PUBLIC_AUTH_METHODS = ("none",)
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class OAuth2Models:
    Client: Any
    Code: Any
    Grant: Any


def build_oauth2_models(db: Any, models: Models) -> OAuth2Models:
    """The client, authorization-code and grant models for ``db`` (made once)."""
    cache = db.metadata.info.setdefault("apitokens", {})
    if "oauth2_models" in cache:
        return cache["oauth2_models"]  # type: ignore[no-any-return]
    user_pk = models.Token.__table__.c.user_id.foreign_keys.copy().pop().column

    def user_id_column() -> sa.Column:
        return sa.Column(user_pk.type.copy(), sa.ForeignKey(user_pk, ondelete="CASCADE"), nullable=False, index=True)

    class OAuth2Client(db.Model, ClientMixin):  # type: ignore[name-defined,misc]
        """A registered third-party application. ``secret_digest`` is a keyed
        digest of the secret (None for a public client)."""

        __tablename__ = "apitokens_oauth2_client"

        client_id = sa.Column(sa.String(64), primary_key=True)
        name = sa.Column(sa.String(200), nullable=False)
        public = sa.Column(sa.Boolean, nullable=False, default=True)
        secret_digest = sa.Column(sa.LargeBinary(32), nullable=True)
        #: Registered redirect URIs, one per line, matched exactly.
        redirect_uris = sa.Column(sa.Text, nullable=False, default="")
        #: Scopes the client may ask for, space-separated.
        scopes = sa.Column(sa.Text, nullable=False, default="")
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)

        @property
        def redirect_uri_list(self) -> list[str]:
            return [uri for uri in self.redirect_uris.split("\n") if uri]

        @property
        def scope_list(self) -> list[str]:
            return self.scopes.split()

        def get_client_id(self) -> str:
            return str(self.client_id)

        def get_default_redirect_uri(self) -> str | None:
            uris = self.redirect_uri_list
            return uris[0] if len(uris) == 1 else None

        def get_allowed_scope(self, scope: str | None) -> str | None:
            # No scope asked for: the client's registered scopes. Anything it may
            # not ask for: None, which Authlib answers with invalid_scope.
            allowed = self.scope_list
            if not scope:
                return " ".join(allowed)
            wanted = scope.split()
            if not set(wanted) <= set(allowed):
                return None
            return " ".join(sorted(set(wanted)))

        def check_redirect_uri(self, redirect_uri: str) -> bool:
            return any(hmac.compare_digest(redirect_uri.encode(), uri.encode()) for uri in self.redirect_uri_list)

        def check_client_secret(self, client_secret: str) -> bool:
            if self.public or not isinstance(client_secret, str) or not client_secret.isascii():
                return False
            # The same keyed digest as tokens, with the client id as the public part.
            digest: Any = self.secret_digest
            return bool(state().service.hasher.verify(str(self.client_id), client_secret, digest))

        def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
            return method in (PUBLIC_AUTH_METHODS if self.public else CONFIDENTIAL_AUTH_METHODS)

        def check_response_type(self, response_type: str) -> bool:
            return response_type == "code"

        def check_grant_type(self, grant_type: str) -> bool:
            return grant_type in GRANT_TYPES

    class OAuth2Code(db.Model, AuthorizationCodeMixin):  # type: ignore[name-defined,misc]
        """An authorization code: its digest, what it was issued for, and once
        exchanged, the token family it made (revoked if the code is replayed)."""

        __tablename__ = "apitokens_oauth2_code"

        digest = sa.Column(sa.LargeBinary(32), primary_key=True)
        client_id = sa.Column(sa.String(64), sa.ForeignKey(OAuth2Client.client_id, ondelete="CASCADE"),
                              nullable=False, index=True)
        user_id = user_id_column()
        redirect_uri = sa.Column(sa.Text, nullable=False, default="")
        scopes = sa.Column(sa.Text, nullable=False, default="")
        code_challenge = sa.Column(sa.String(128), nullable=True)
        code_challenge_method = sa.Column(sa.String(16), nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        expires_at = sa.Column(sa.DateTime, nullable=False, index=True)
        used_at = sa.Column(sa.DateTime, nullable=True)
        family_id = sa.Column(sa.String(16), nullable=True)

        def get_redirect_uri(self) -> str:
            return str(self.redirect_uri)

        def get_scope(self) -> str:
            return str(self.scopes)

    class OAuth2Grant(db.Model):  # type: ignore[name-defined,misc]
        """A user's approval of a client: which scopes, first and last time."""

        __tablename__ = "apitokens_oauth2_grant"
        __table_args__ = (sa.UniqueConstraint("user_id", "client_id"),)

        id = sa.Column(sa.Integer, primary_key=True)
        user_id = user_id_column()
        client_id = sa.Column(sa.String(64), sa.ForeignKey(OAuth2Client.client_id, ondelete="CASCADE"),
                              nullable=False, index=True)
        scopes = sa.Column(sa.Text, nullable=False, default="")
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)

    built = OAuth2Models(OAuth2Client, OAuth2Code, OAuth2Grant)
    cache["oauth2_models"] = built
    return built
