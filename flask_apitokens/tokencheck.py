"""The check of a presented credential: the part of :class:`TokenService
<flask_apitokens.service.TokenService>` that runs on every protected request.

It is one plain SQL statement that reads the token row joined to the user's
active flag: a Core statement compiled once for the engine's dialect
(:class:`~flask_apitokens.tokenstore.RawStatement`) and run on a DBAPI cursor
of a connection kept for the purpose, in the driver's autocommit mode
(:class:`~flask_apitokens.tokenstore.TokenStoreConnections`). On PostgreSQL
that is a single round trip, with no ``BEGIN``/``ROLLBACK``; there is no pool
checkout, and no ORM or Core result object is built (measured in ``bench/``:
each of those cost more than the lookup itself). Nothing is cached in the
process, so a revoked or expired token, or a deactivated user, is refused by
every process on the very next request.

The check writes only on connections of its own (the last-used time, the
recent uses, revoking a token left unused): never through the host's
``db.session``, which it neither flushes nor commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from . import crypto, dberrors, errors, recent_uses, signals
from .config import Settings
from .models import Models, sql_utcnow, utcnow
from .revocation import revoke_apart
from .tokeninfo import KEY, OAUTH2, TOKEN, USER_TOKEN, TokenInfo
from .tokenstore import RawStatement, TokenStoreConnections
from .users import UserStore
from .usertoken import UserTokenCodec


class TokenCheck:
    """The token check, a base of :class:`~flask_apitokens.service.TokenService`
    (a base, not a helper object: the check is the hot path, and a delegation
    would add a call to every request)."""

    app: Any  # only the sender of the signals
    db: Any
    models: Models
    users: UserStore
    settings: Settings
    hasher: crypto.Hasher
    prefixes: dict[str, str]
    #: Signs and checks user-token JWTs, which are also bearer credentials.
    user_tokens: UserTokenCodec

    def _prepare_check(self, settings: Settings) -> None:
        t = self.models.token_table
        self._touch = (
            sa.update(t)
            .where(t.c.id == sa.bindparam("tid", type_=t.c.id.type))
            .where(sa.or_(t.c.last_used_at.is_(None),
                          t.c.last_used_at < sa.bindparam("before", type_=t.c.last_used_at.type)))
            .values(last_used_at=sa.bindparam("now", type_=t.c.last_used_at.type),
                    last_used_ip=sa.bindparam("ip", type_=t.c.last_used_ip.type))
        )
        self._raw: tuple[RawStatement, RawStatement] | None = None
        self._uses: RawStatement | bool | None = None
        # Read once: the check runs on every request, and settings do not change.
        unused_days = settings["REVOKE_UNUSED_AFTER_DAYS"]
        self._unused_after = dt.timedelta(days=unused_days) if unused_days is not None else None
        self._last_used_interval: int = settings["LAST_USED_INTERVAL"]
        self._owner_columns = 0
        self._bound_times: dict[str, int] = {}

    def _lookup_statement(self, dialect_name: str = "") -> sa.Select:
        """The token row, whether it is refused (revoked, expired, unused) and
        whether last-used is due, decided by the database's clock (no clock,
        no time arithmetic in the process); the owner's active flag and, for a
        store that can make a user from its row
        (:class:`~flask_apitokens.users.RowUserStore`), the owner's columns.
        One statement. A database without a clock here gets the times bound."""
        t = self.models.token_table

        def ago(seconds: int, name: str) -> sa.ColumnElement[Any]:
            clock = sql_utcnow(dialect_name, seconds)
            if clock is None:
                self._bound_times[name] = seconds
                return sa.bindparam(name, type_=t.c.expires_at.type)
            return clock

        self._bound_times = {}
        def word(text: str) -> sa.ColumnElement[str]:
            return sa.literal_column(f"'{text}'", sa.String)  # in the SQL, not a parameter

        refused = [(t.c.revoked_at.is_not(None), word("revoked")), (t.c.expires_at <= ago(0, "now"), word("expired"))]
        if self._unused_after is not None:
            seconds = int(self._unused_after.total_seconds())
            last_seen = sa.func.coalesce(t.c.last_used_at, t.c.created_at)
            refused.append((last_seen < ago(seconds, "unused"), word("unused")))
        interval = self._last_used_interval
        due = (sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at <= ago(interval, "due"))
               if interval else sa.true())
        columns = [t.c.digest, t.c.user_id, t.c.kind, t.c.via, t.c.name, t.c.scopes, t.c.created_at,
                   t.c.expires_at, t.c.last_used_at, t.c.client_id,
                   sa.case(*refused, else_=sa.null()).label("apitokens_refused"), due.label("apitokens_due")]
        active = self.users.active_column
        owner = tuple(getattr(self.users, "user_columns", None) or ())
        if owner and active is not None and owner[0].table is not active.table:
            owner = ()  # a store whose flag lives elsewhere: keep its own load
        self._owner_columns = len(owner)
        user_table = active.table if active is not None else owner[0].table if owner else None
        # Labelled: the flag may also be one of the owner's columns, and must not be merged with it.
        flag = active.label("apitokens_active") if active is not None else sa.true()
        query = sa.select(*columns, flag, *owner)
        if user_table is not None:
            user_pk = next(iter(user_table.primary_key.columns))
            query = query.join_from(t, user_table, user_pk == t.c.user_id)
        return query.where(t.c.id == sa.bindparam("tid", type_=t.c.id.type))

    def _statements(self) -> tuple[RawStatement, RawStatement]:
        """The lookup and the last-used write, compiled for the host's engine
        on first use (Flask-SQLAlchemy makes an app's engines once, in init_app)."""
        if self._raw is None:
            engine = self.db.engine
            connections = TokenStoreConnections(engine)
            lookup = self._lookup_statement(engine.dialect.name)
            # The owner's columns are converted only when a view reads current_user.
            first = RawStatement(lookup, connections, processed=len(lookup.selected_columns) - self._owner_columns)
            self._raw = (first, RawStatement(self._touch, connections))
        return self._raw

    def parse(self, text: str, kinds: Iterable[str]) -> tuple[str, crypto.ParsedToken] | None:
        for kind in kinds:
            parsed = crypto.parse(text, self.prefixes[kind])
            if parsed is not None:
                return kind, parsed
        return None

    def authenticate(self, text: str, *, scheme: str, ip: str | None = None,
                     user_agent: str | None = None) -> TokenInfo:
        """The credential ``text`` presented with ``scheme`` (``token``, ``key`` or
        ``bearer``), checked against the database. Raises InvalidToken. ``ip`` and
        ``user_agent`` are recorded with the last use (see :mod:`.recent_uses`)."""
        return self.check(text, scheme=scheme, ip=ip, user_agent=user_agent)[0]

    def check(self, text: str, *, scheme: str, ip: str | None = None,
              user_agent: str | None = None) -> tuple[TokenInfo, Sequence[Any] | None]:
        """:meth:`authenticate`, and the owner's row as the same statement read it
        (for :meth:`owner`; None when the user store reads users itself)."""
        if scheme == "key":
            kinds: tuple[str, ...] = (KEY,)
        elif scheme == "token":
            kinds = (TOKEN,)
        else:
            kinds = (TOKEN, OAUTH2)
        found = self.parse(text, kinds)
        if found is not None:
            kind, parsed = found
            return self._check(parsed.public_id, parsed.secret, kind, ip, user_agent)
        if scheme == "bearer":
            public_id = self.user_tokens.record_id(text)
            if public_id is not None:
                return self._check(public_id, None, USER_TOKEN, ip, user_agent)
        # Not one of ours: the caller decides (a view refuses it, the request
        # loader hands it to the host's own). No signal here: it may be the host's.
        raise errors.ForeignCredential()

    def report_refused(self, reason: str) -> None:
        """Tell ``authentication_failed`` receivers that a credential presented
        in one of the token schemes was refused, and why (``unknown``,
        ``revoked``, ``expired``, ``unused``, ``inactive_user``, ``malformed``)."""
        signals.authentication_failed.send(self.app, method="token", reason=reason, login=None)

    def _refuse(self, reason: str) -> errors.InvalidToken:
        self.report_refused(reason)
        return errors.InvalidToken()

    def owner(self, user_id: Any, row: Sequence[Any] | None) -> Any | None:
        """The credential's owner: made from ``row`` (see :meth:`check`) without
        SQL when there is one, else loaded by the user store."""
        if row is not None:
            return self.users.user_from_row(row, self._statements()[0].dialect)  # type: ignore[attr-defined]
        return self.users.get(user_id)

    def _check(self, public_id: str, secret: str | None, kind: str, ip: str | None,
               user_agent: str | None = None) -> tuple[TokenInfo, Sequence[Any] | None]:
        lookup = self._statements()[0]
        values: dict[str, Any] = {"tid": public_id}
        if self._bound_times:
            now = utcnow()
            values.update((name, now - dt.timedelta(seconds=ago)) for name, ago in self._bound_times.items())
        try:
            row = lookup.first(values)
        except sa.exc.DBAPIError as exc:
            raise dberrors.unavailable(exc, "the token check") from exc
        if row is None:
            raise self._refuse("unknown")
        (digest, user_id, row_kind, via, name, scopes, created_at,
         expires_at, last_used_at, client_id, refused, due, active) = row[:13]
        # A user-token record has no secret: its JWT's signature was the proof.
        proven = secret is None if kind == USER_TOKEN else self.hasher.verify(public_id, secret or "", digest)
        if not proven or row_kind != kind:
            raise self._refuse("unknown")
        if refused is not None and refused != "unused":
            raise self._refuse(refused)  # revoked, expired
        if not active:
            raise self._refuse("inactive_user")
        if refused is not None:
            self._revoke_unused(public_id, user_id)
            raise self._refuse("unused")
        info = TokenInfo(public_id, user_id, row_kind, via, name, frozenset(scopes.split()),
                         created_at, expires_at, last_used_at, None, client_id)
        if due:
            self._record_use(info, utcnow(), ip, self._last_used_interval, user_agent)
        return info, row[13:] if self._owner_columns else None

    def _revoke_unused(self, public_id: str, user_id: Any) -> None:
        """Revoke a token left unused too long, and its lineage, in a session of
        its own: the host's may hold the request's own pending work."""
        T = self.models.Token
        revoked = revoke_apart(self.db.engine, self.models, [public_id], [T.user_id == user_id], "unused")
        if revoked:
            # The host's own receivers may query its session: they must not flush the request's pending work.
            with self.db.session.no_autoflush:
                signals.token_revoked.send(self.app, token_ids=revoked, user_id=user_id, reason="unused")

    def _record_use(self, info: TokenInfo, now: dt.datetime, ip: str | None, interval: int,
                    user_agent: str | None = None) -> None:
        """Write last-used time and address: at most once per ``interval`` seconds,
        and only one of several processes racing for the same token does."""
        before = now - dt.timedelta(seconds=interval) if interval else now + dt.timedelta(seconds=1)
        try:
            written = self._statements()[1].rowcount({"tid": info.id, "before": before, "now": now, "ip": ip})
        except sa.exc.DBAPIError:
            return  # a missed last-used write must not refuse a valid token
        if written:
            self._record_address(info.id, now, ip, user_agent)
            signals.token_used.send(self.app, token=info)

    def _record_address(self, token_id: str, now: dt.datetime, ip: str | None, user_agent: str | None) -> None:
        """The one extra statement of a last-used write: the token's recent uses."""
        if self._uses is None:
            statement = recent_uses.upsert_statement(self.models, self.db.engine.dialect.name)
            self._uses = RawStatement(statement, self._statements()[1].connections) if statement is not None else False
        if isinstance(self._uses, RawStatement):
            try:
                self._uses.rowcount(recent_uses.values(token_id, now, ip, user_agent))
            except sa.exc.DBAPIError:
                pass  # like last-used itself: a missed write must not refuse a valid token
