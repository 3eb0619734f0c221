"""The extension's tables, declared on the host application's Flask-SQLAlchemy ``db``.

They are built once per ``db`` (its metadata) when ``init_app`` runs, so the
host's ``db.create_all()`` or its migrations see them. Times are naive UTC.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_EPOCH = dt.datetime(1970, 1, 1)


def utcnow() -> dt.datetime:
    """Now, as naive UTC to the microsecond: what the tables store. Built from
    ``time.time_ns()`` at a quarter of ``datetime.now(timezone.utc)``'s cost,
    since the token check runs it on every request."""
    return _EPOCH + dt.timedelta(microseconds=time.time_ns() // 1000)


def sql_utcnow(dialect_name: str, seconds_ago: int = 0) -> sa.ColumnElement[Any] | None:
    """The database's own clock as the tables store times (naive UTC), less
    ``seconds_ago``; None for a database without one here (bind the time then).
    SQLite's is to the millisecond; its text compares with the stored
    ``YYYY-MM-DD HH:MM:SS.ffffff`` as the times do."""
    seconds_ago = int(seconds_ago)
    if dialect_name == "sqlite":
        modifier = f", '-{seconds_ago} seconds'" if seconds_ago else ""
        return sa.literal_column(f"strftime('%Y-%m-%d %H:%M:%f', 'now'{modifier})", sa.DateTime)
    if dialect_name == "postgresql":
        less = f" - interval '{seconds_ago} seconds'" if seconds_ago else ""
        return sa.literal_column(f"(timezone('UTC', now()){less})", sa.DateTime)
    return None


@dataclass(frozen=True)
class Models:
    Token: Any
    Identity: Any
    token_table: sa.Table
    identity_table: sa.Table
    #: Recent client addresses of each token (see :mod:`flask_apitokens.recent_uses`).
    use_table: sa.Table


def build_models(db: Any, user_model: Any) -> Models:
    """The token and identity models for ``db``, linked to ``user_model``'s primary key."""
    cache = db.metadata.info.setdefault("apitokens", {})
    if "models" in cache:
        models: Models = cache["models"]
        if models.Token.__table__.c.user_id.references(_primary_key(user_model)):
            return models
        raise RuntimeError("flask-apitokens: this db is already set up with another user model")

    user_pk = _primary_key(user_model)

    def user_id_column() -> sa.Column:
        return sa.Column(user_pk.type.copy(), sa.ForeignKey(user_pk, ondelete="CASCADE"), nullable=False, index=True)

    class APIToken(db.Model):  # type: ignore[name-defined,misc]
        """One credential: an API token, an API key, a user-token JWT's record or an
        OAuth2 token. ``id`` is the random public id; only a keyed digest of the
        secret is kept."""

        __tablename__ = "apitokens_token"

        id = sa.Column(sa.String(16), primary_key=True)
        user_id = user_id_column()
        kind = sa.Column(sa.String(16), nullable=False)
        via = sa.Column(sa.String(32), nullable=False)
        name = sa.Column(sa.String(200), nullable=False, default="")
        scopes = sa.Column(sa.Text, nullable=False, default="")
        digest = sa.Column(sa.LargeBinary(32), nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
        created_ip = sa.Column(sa.String(45), nullable=True)
        expires_at = sa.Column(sa.DateTime, nullable=True, index=True)
        last_used_at = sa.Column(sa.DateTime, nullable=True)
        last_used_ip = sa.Column(sa.String(45), nullable=True)
        revoked_at = sa.Column(sa.DateTime, nullable=True)
        #: Why it was revoked (``leaked``, ``logout_everywhere``, ``password_changed``...).
        revoked_reason = sa.Column(sa.String(32), nullable=True)
        expiry_notified_at = sa.Column(sa.DateTime, nullable=True)
        #: The credential this one was made with (a token minting a token, an OAuth2
        #: access token's app minting one) or whose family it belongs to (OAuth2:
        #: the family's first refresh token). Revoking a row revokes its children,
        #: and a child never expires after the parent it was made with.
        parent_id = sa.Column(sa.String(16), nullable=True, index=True)
        #: The token this one was rotated into (``POST /api/tokens/<id>/rotate``).
        #: Set once: rotating it again is reuse and revokes the whole family.
        replaced_by = sa.Column(sa.String(16), nullable=True, index=True)
        #: The OAuth2 client a token was issued to.
        client_id = sa.Column(sa.String(64), nullable=True, index=True)

        @property
        def scope_list(self) -> list[str]:
            return self.scopes.split()

    class APITokenIdentity(db.Model):  # type: ignore[name-defined,misc]
        """A link from a local user to an outside identity (an LDAP entry, a
        GitHub account, ...), so later logins find the same user even when the
        directory or provider changes the account's email or name."""

        __tablename__ = "apitokens_identity"
        __table_args__ = (sa.UniqueConstraint("provider", "subject"),)

        id = sa.Column(sa.Integer, primary_key=True)
        user_id = user_id_column()
        provider = sa.Column(sa.String(64), nullable=False)
        subject = sa.Column(sa.String(512), nullable=False)
        email = sa.Column(sa.String(320), nullable=True)
        created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)

    use_table = sa.Table(
        # Up to RECENT_USES rows per token, one per slot: a new address takes
        # the next free slot, then the oldest one (one upsert, no delete).
        "apitokens_token_use", db.metadata,
        sa.Column("token_id", sa.String(16), sa.ForeignKey(APIToken.id, ondelete="CASCADE"), primary_key=True),
        sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=True),
        sa.Column("last_used_at", sa.DateTime, nullable=False),
    )
    models = Models(APIToken, APITokenIdentity, APIToken.__table__, APITokenIdentity.__table__, use_table)
    cache["models"] = models
    return models


def _primary_key(user_model: Any) -> sa.Column:
    columns = list(user_model.__table__.primary_key.columns)
    if len(columns) != 1:
        raise RuntimeError("flask-apitokens: the user model needs a single-column primary key")
    return columns[0]
