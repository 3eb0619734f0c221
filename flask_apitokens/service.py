"""TokenService: issue, authenticate, revoke, rotate, list and purge credentials.

No request objects here: the Flask layer passes in what it read (the credential
text, the client address) and turns results and errors into responses.

The check of a presented token (:meth:`TokenService.authenticate`) runs on
every protected request, so it is one plain SQL statement that reads the token
row joined to the user's active flag: a Core statement compiled once for the
engine's dialect (:class:`RawStatement`) and run on a DBAPI cursor of a
connection kept for the purpose, in the driver's autocommit mode
(:class:`TokenStoreConnections`). On PostgreSQL that is a single round trip,
with no ``BEGIN``/``ROLLBACK``; there is no pool checkout, and no ORM or Core
result object is built (measured in ``bench/``: each of those cost more than
the lookup itself). Nothing is cached in the process, so a revoked or expired
token, or a deactivated user, is refused by every process on the very next
request.
"""

from __future__ import annotations

import builtins  # the method `list` below shadows the built-in in later annotations
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import Flask

from . import crypto, dberrors, errors, recent_uses, signals
from .config import Settings
from .models import Models, sql_utcnow, utcnow
from .tokenstore import RawStatement, TokenStoreConnections
from .users import UserStore

#: Kinds of credential, and the scheme each is presented with.
TOKEN, KEY, USER_TOKEN, OAUTH2 = "token", "key", "user-token", "oauth2"
#: OAuth2 refresh tokens: stored like the others, never accepted on protected views.
REFRESH = "refresh"
#: Kinds a person manages as "their tokens" (keys are the administrator's).
PERSONAL_KINDS = (TOKEN, USER_TOKEN, OAUTH2)

_PENDING_ISSUED = "apitokens.pending-issued"

#: Pass as ``expires_in`` to mean "the method's default expiry".
DEFAULT: Any = object()


def iso(moment: dt.datetime | None) -> str | None:
    """``2027-02-20T12:00:00.000Z`` for a naive UTC time; None stays None."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TokenInfo(NamedTuple):
    """What the extension knows of one credential. Never holds a secret.

    Immutable. A named tuple rather than a frozen dataclass: one is made on
    every protected request, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) cost several times as much.
    """

    id: str
    user_id: Any
    kind: str
    via: str
    name: str
    scopes: frozenset[str]
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    client_id: str | None = None
    revoked_reason: str | None = None

    def has_scopes(self, required: Iterable[str]) -> bool:
        return self.scopes.issuperset(required)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "via": self.via,
            "scopes": sorted(self.scopes),
            "createdOn": iso(self.created_at),
            "lastUsedOn": iso(self.last_used_at),
            "expiresOn": iso(self.expires_at),
        }


@dataclass(frozen=True)
class IssuedToken:
    """A new credential: ``token`` is its plain text, shown once and never stored."""

    token: str
    info: TokenInfo


class TokenService:
    def __init__(self, app: Flask, db: Any, models: Models, users: UserStore, settings: Settings) -> None:
        self.app = app
        self.db = db
        self.models = models
        self.users = users
        self.settings = settings
        self.hasher = crypto.Hasher(settings.pepper, settings.pepper_fallbacks)
        self.prefixes = {
            TOKEN: settings["TOKEN_PREFIX"],
            KEY: settings["KEY_PREFIX"],
            OAUTH2: settings["OAUTH2_PREFIX"],
            REFRESH: settings["OAUTH2_REFRESH_PREFIX"],
        }
        #: Bearer credentials that are not ``X:XXX`` tokens (user-token JWTs) are
        #: handed to these: each returns the record's public id, or None if not its kind.
        self.bearer_verifiers: list[Callable[[str], str | None]] = []
        t = models.token_table
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

    # -- the hot path --------------------------------------------------------------
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
            for verify in self.bearer_verifiers:
                public_id = verify(text)
                if public_id is not None:
                    return self._check(public_id, None, USER_TOKEN, ip, user_agent)
        # Not one of ours: the caller decides (a view refuses it, the request
        # loader hands it to the host's own). No signal here: it may be the host's.
        raise errors.ForeignCredential()

    def _refuse(self, reason: str) -> errors.InvalidToken:
        signals.authentication_failed.send(self.app, method="token", reason=reason, login=None)
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
            self.revoke([public_id], user_id=user_id, reason="unused")
            raise self._refuse("unused")
        info = TokenInfo(public_id, user_id, row_kind, via, name, frozenset(scopes.split()),
                         created_at, expires_at, last_used_at, None, client_id)
        if due:
            self._record_use(info, utcnow(), ip, self._last_used_interval, user_agent)
        return info, row[13:] if self._owner_columns else None

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

    # -- issuing -----------------------------------------------------------------
    def check_scopes(self, scopes: Iterable[str] | None, *, within: Iterable[str] | None = None) -> list[str]:
        """``scopes`` as a sorted list, after checking each is declared (400
        invalid_scope) and, with ``within``, no wider than the credential it comes from (403)."""
        wanted = sorted(set(scopes or ()))
        unknown = [s for s in wanted if s not in self.settings.scopes]
        if unknown:
            raise errors.InvalidScope(f"Unknown scope: {unknown[0]!r}.")
        if within is not None and not set(wanted) <= set(within):
            raise errors.InsufficientScope("A token cannot get a scope its own credential lacks.")
        return wanted

    def lifetime(self, method: str, kind: str, expires_in: int | None = DEFAULT) -> int | None:
        """Seconds until a new credential expires: ``expires_in`` if given (None:
        never), else the default of ``method`` (``userpass``, ``provider``...);
        capped by APITOKENS_MAX_LIFETIME (API keys are exempt)."""
        if expires_in is DEFAULT:
            seconds = self.settings.expiry_for(kind if kind in (KEY, USER_TOKEN, OAUTH2) else method)
        elif expires_in is None:
            seconds = None
        elif isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            raise errors.BadRequest("expires_in must be a positive whole number of seconds.")
        else:
            seconds = expires_in
        cap = self.settings["MAX_LIFETIME"]
        if kind != KEY and cap is not None:
            seconds = cap if seconds is None else min(seconds, cap)
        return seconds

    def issue(self, user: Any, *, via: str, method: str | None = None, kind: str = TOKEN, name: str = "",
              scopes: Iterable[str] = (),
              expires_in: int | None = DEFAULT, ip: str | None = None, client_id: str | None = None,
              parent_id: str | None = None, not_after: dt.datetime | None = None, public_id: str | None = None,
              commit: bool = True, replaces: bool = False) -> IssuedToken:
        """Make a credential for ``user`` and store its digest. ``via`` says how it
        was issued (shown to its owner); ``method`` names the expiry setting when it
        differs from ``via`` (e.g. ``provider`` for ``via="github"``). ``expires_in``
        is seconds (None: never, within the cap); by default, the method's expiry.
        ``parent_id`` names the credential it was made with, and ``not_after`` caps
        its expiry (a child never outlives its parent).
        For ``user-token`` records no secret is made (``token`` is empty).
        ``replaces``: the new credential takes an old one's place (a rotation), so
        APITOKENS_MAX_TOKENS_PER_USER does not apply."""
        if not isinstance(name, str) or len(name) > 200:
            raise errors.BadRequest("name must be text of at most 200 characters.")
        scope_list = self.check_scopes(scopes)
        seconds = self.lifetime(method or via, kind, expires_in)
        now = utcnow()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the precision of expiresOn
        expires_at = now + dt.timedelta(seconds=seconds) if seconds is not None else None
        if not_after is not None and (expires_at is None or expires_at > not_after):
            expires_at = not_after
        if kind == USER_TOKEN:
            plain, public_id, digest = "", public_id or crypto.new_public_id(), None
        else:
            plain, parts = crypto.generate(self.prefixes[kind])
            public_id, digest = parts.public_id, self.hasher.digest(parts.public_id, parts.secret)
        user_id = self.users.user_id(user)
        if kind in PERSONAL_KINDS and not replaces:
            self._check_cap(user_id, now)
        row = self.models.Token(
            id=public_id, user_id=user_id, kind=kind, via=via, name=name.strip(),
            scopes=" ".join(scope_list), digest=digest, created_at=now, created_ip=ip,
            expires_at=expires_at, client_id=client_id, parent_id=parent_id,
        )
        session = self.db.session
        session.add(row)
        info = self.info(row)
        self._pending_issued(session()).append((info, user_id, via))
        if commit:
            self.commit()
        return IssuedToken(plain, info)

    def _check_cap(self, user_id: Any, now: dt.datetime) -> None:
        """409 too_many_tokens when ``user_id`` already has APITOKENS_MAX_TOKENS_PER_USER
        live personal credentials. The owner's row is locked first (``FOR UPDATE``,
        till the issue commits) so two concurrent issues cannot both pass."""
        cap = self.settings["MAX_TOKENS_PER_USER"]
        if cap is None:
            return
        T = self.models.Token
        session = self.db.session
        user_pk = next(iter(T.__table__.c.user_id.foreign_keys)).column
        session.execute(sa.select(user_pk).where(user_pk == user_id).with_for_update())
        live = session.execute(
            sa.select(sa.func.count()).select_from(T).where(
                T.user_id == user_id, T.kind.in_(PERSONAL_KINDS), T.revoked_at.is_(None),
                sa.or_(T.expires_at.is_(None), T.expires_at > now))
        ).scalar_one()
        if live >= cap:
            raise errors.TooManyTokens(
                f"You may have at most {cap} live tokens: revoke one first.")

    @staticmethod
    def _pending_issued(session: Any) -> list[tuple[TokenInfo, Any, str]]:
        """``token_issued`` waits for the commit that makes the token real; a
        rollback forgets it (see :meth:`commit`)."""
        pending = session.info.get(_PENDING_ISSUED)
        if pending is None:
            pending = session.info[_PENDING_ISSUED] = []
            sa.event.listen(session, "after_rollback", lambda s: s.info.get(_PENDING_ISSUED, []).clear())
        return pending  # type: ignore[no-any-return]

    def commit(self) -> None:
        """Commit the session; a database failure rolls back and becomes a 503."""
        session = self.db.session()
        try:
            session.commit()
        except sa.exc.DBAPIError as exc:
            session.rollback()
            raise dberrors.unavailable(exc, "a commit") from exc
        issued = session.info.get(_PENDING_ISSUED)
        while issued:
            info, user_id, via = issued.pop(0)
            signals.token_issued.send(self.app, token=info, user_id=user_id, via=via)

    @staticmethod
    def info(row: Any) -> TokenInfo:
        return TokenInfo(row.id, row.user_id, row.kind, row.via, row.name, frozenset(row.scopes.split()),
                         row.created_at, row.expires_at, row.last_used_at, row.revoked_at, row.client_id,
                         row.revoked_reason)

    # -- managing ------------------------------------------------------------------
    def get(self, token_id: str, *, user_id: Any = None, kinds: Iterable[str] | None = None) -> Any | None:
        """The row ``token_id`` (of ``user_id``, of one of ``kinds``), or None."""
        row = self.db.session.get(self.models.Token, token_id) if crypto.is_public_id(token_id) else None
        if row is None or (user_id is not None and row.user_id != user_id):
            return None
        if kinds is not None and row.kind not in kinds:
            return None
        return row

    def list(self, user_id: Any = None, *, kinds: Iterable[str] = PERSONAL_KINDS,
             include_inactive: bool = False) -> list[TokenInfo]:
        """Credentials newest first; by default only those still usable."""
        T = self.models.Token
        query = sa.select(T).where(T.kind.in_(list(kinds)))
        if user_id is not None:
            query = query.where(T.user_id == user_id)
        if not include_inactive:
            query = query.where(T.revoked_at.is_(None)).where(sa.or_(T.expires_at.is_(None), T.expires_at > utcnow()))
        rows = self.db.session.execute(query.order_by(T.created_at.desc(), T.id)).scalars()
        return [self.info(row) for row in rows]

    def revoke(self, token_ids: Iterable[str], *, user_id: Any = None, kinds: Iterable[str] | None = None,
               reason: str = "revoked") -> builtins.list[str]:
        """Revoke the given credentials (of ``user_id``; live ones of ``kinds``, when
        given) and their lineage: every credential made with them (``parent_id``),
        and the whole rotation family of each (``replaced_by``, both ways), however
        deep and whatever state the rows between are in. Returns the ids revoked."""
        T = self.models.Token
        ids = [token_id for token_id in token_ids if crypto.is_public_id(token_id)]
        owned = [T.user_id == user_id] if user_id is not None else []
        if ids and kinds is not None:
            ids = list(self.db.session.execute(
                sa.select(T.id).where(*owned, T.revoked_at.is_(None), T.id.in_(ids), T.kind.in_(list(kinds)))
            ).scalars())
        if not ids:
            return []
        session = self.db.session
        lineage = self._lineage(ids, owned)
        live = set(session.execute(
            sa.select(T.id).where(T.id.in_(lineage), T.revoked_at.is_(None))).scalars())
        revoked = [token_id for token_id in lineage if token_id in live]
        if revoked:
            session.execute(sa.update(T).where(T.id.in_(revoked), T.revoked_at.is_(None))
                            .values(revoked_at=utcnow(), revoked_reason=reason[:32])
                            .execution_options(synchronize_session=False))
        self.commit()
        if revoked:
            signals.token_revoked.send(self.app, token_ids=revoked, user_id=user_id, reason=reason)
        return revoked

    def _lineage(self, ids: Sequence[str], owned: Sequence[Any]) -> Sequence[str]:
        """``ids`` and every row linked to them downwards (children) or through a
        rotation (successor and predecessor), in the order found."""
        T = self.models.Token
        found = [*dict.fromkeys(ids)]
        seen = set(found)
        frontier = found
        while frontier:
            rows = self.db.session.execute(
                sa.select(T.id, T.replaced_by).where(
                    *owned, sa.or_(T.id.in_(frontier), T.parent_id.in_(frontier), T.replaced_by.in_(frontier)))
            ).all()
            new = [*dict.fromkeys(token_id for pair in rows for token_id in pair
                                  if token_id is not None and token_id not in seen)]
            seen.update(new)
            found += new
            frontier = new
        return found

    def revoke_all(self, user_id: Any, *, kinds: Iterable[str] = PERSONAL_KINDS,
                   reason: str = "revoked") -> builtins.list[str]:
        T = self.models.Token
        ids = self.db.session.execute(
            sa.select(T.id).where(T.user_id == user_id, T.kind.in_(list(kinds)), T.revoked_at.is_(None))
        ).scalars().all()
        return self.revoke(ids, user_id=user_id, reason=reason)

    def rotate(self, token_id: str, *, user: Any, ip: str | None = None,
               presenter: TokenInfo | None = None) -> IssuedToken:
        """A new token with the same name, scopes and lifetime; the old one keeps
        working for APITOKENS_ROTATION_GRACE seconds.

        ``presenter`` is the credential the request came with (None: a session,
        which holds every scope). It must hold every scope of the token, else 403
        and nothing changes; the new token is then its child. A token rotates
        once: rotating it again means a copy is in use elsewhere, so its whole
        family is revoked and 409 ``token_reused`` raised."""
        user_id = self.users.user_id(user)
        # API keys are the administrator's: their holder may neither revoke nor rotate them.
        row = self.get(token_id, user_id=user_id, kinds=(TOKEN,))
        if row is None:
            raise errors.NotFound("No such token.", code="token_not_found")
        if presenter is not None and not presenter.scopes.issuperset(row.scope_list):
            missing = " ".join(sorted(set(row.scope_list) - presenter.scopes))
            raise errors.InsufficientScope(f"Rotating this token needs every scope it has; missing: {missing}.")
        if row.replaced_by is not None:
            self._reused(row.id, user_id)
        now = utcnow()
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise errors.NotFound("No such token.", code="token_not_found")
        lifetime = None
        if row.expires_at is not None:
            lifetime = max(1, int((row.expires_at - row.created_at).total_seconds()))
        # The new token keeps the old one's place in its lineage, and when another
        # token made it, it is that token's child too: it never outlives either.
        T = self.models.Token
        parent_id = row.parent_id
        ends = [self.db.session.execute(sa.select(T.expires_at).where(T.id == row.parent_id)).scalar()
                if row.parent_id else None]
        if presenter is not None and presenter.id != row.id:
            parent_id = presenter.id
            ends.append(presenter.expires_at)
        not_after = min((end for end in ends if end is not None), default=None)
        issued = self.issue(user, via=row.via, kind=row.kind, name=row.name, scopes=row.scope_list,
                            expires_in=lifetime, ip=ip, parent_id=parent_id, not_after=not_after, commit=False,
                            replaces=True)
        grace_end = now + dt.timedelta(seconds=self.settings["ROTATION_GRACE"])
        expires_at = grace_end if row.expires_at is None or row.expires_at > grace_end else row.expires_at
        # Conditional, so that of two concurrent rotations only one succeeds.
        claimed = self.db.session.execute(
            sa.update(T).where(T.id == row.id, T.replaced_by.is_(None))
            .values(replaced_by=issued.info.id, expires_at=expires_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            self.db.session.rollback()
            self._reused(row.id, user_id)
        self.commit()
        return issued

    def _reused(self, token_id: str, user_id: Any) -> None:
        """A rotated token was rotated again: revoke its family, then refuse."""
        self.revoke([token_id], user_id=user_id, reason="rotation_reuse")
        raise errors.TokenReused()

    def purgeable(self, now: dt.datetime, revoked_before: dt.datetime) -> sa.ColumnElement[bool]:
        """Which rows ``purge-expired`` may delete, as one WHERE clause: the only
        place that says so (the batching in :meth:`purge_expired` never repeats it).

        Expired credentials, and revoked ones older than the given age, except
        what reuse detection still needs: a rotated refresh token while any
        member of its OAuth2 family is live, and a rotated API token while any
        token it was rotated into (however many rotations on) is live."""
        T = self.models.Token
        dead = sa.or_(T.expires_at <= now, T.revoked_at <= revoked_before)
        keep = self._rotated_with_live_successors(now, dead)
        live = self.models.token_table.alias("live")
        family = sa.func.coalesce(T.parent_id, T.id)
        family_lives = sa.exists().where(
            live.c.revoked_at.is_(None), sa.or_(live.c.expires_at.is_(None), live.c.expires_at > now),
            sa.or_(live.c.id == family, live.c.parent_id == family))
        condition = sa.and_(dead, sa.not_(sa.and_(T.kind == REFRESH, family_lives)))
        return sa.and_(condition, T.id.not_in(keep)) if keep else condition

    def purge_expired(self, *, revoked_older_than_days: int = 0, batch_size: int = 5000,
                      progress: Callable[[int], None] | None = None) -> int:
        """Delete what :meth:`purgeable` allows, ``batch_size`` rows per
        transaction, so a large table is never locked for long and the host's
        requests go on between batches. ``progress`` is called with the number
        of rows of each batch. Returns how many rows went."""
        T = self.models.Token
        now = utcnow()
        condition = self.purgeable(now, now - dt.timedelta(days=revoked_older_than_days))
        session = self.db.session
        purged, after = 0, ""
        while True:
            # Keyset pagination on the primary key: each batch starts where the
            # last one ended, so no batch scans again past the rows (or, on
            # PostgreSQL, the dead index entries) of the batches before it.
            try:
                ids = session.execute(sa.select(T.id).where(condition, T.id > after)
                                      .order_by(T.id).limit(batch_size)).scalars().all()
                deleted = 0
                for start in range(0, len(ids), 1000):  # SQLite's limit on bound parameters
                    chunk = ids[start:start + 1000]
                    deleted += session.execute(sa.delete(T).where(T.id.in_(chunk), condition)
                                               .execution_options(synchronize_session=False)).rowcount or 0
                    recent_uses.delete_gone(session, self.models, chunk)
            except sa.exc.DBAPIError as exc:
                session.rollback()
                raise dberrors.unavailable(exc, "purge-expired") from exc
            self.commit()
            purged += deleted
            if progress is not None and deleted:
                progress(deleted)
            if len(ids) < batch_size:
                return purged
            after = ids[-1]

    def count_purgeable(self, *, revoked_older_than_days: int = 0) -> int:
        """How many rows :meth:`purge_expired` would delete now (for a progress bar)."""
        T = self.models.Token
        now = utcnow()
        condition = self.purgeable(now, now - dt.timedelta(days=revoked_older_than_days))
        return int(self.db.session.execute(sa.select(sa.func.count()).select_from(T).where(condition)).scalar_one())

    def _rotated_with_live_successors(self, now: dt.datetime, dead: Any) -> set[str]:
        """Ids of purgeable rotated tokens whose chain of successors holds a live one."""
        T = self.models.Token
        session = self.db.session
        chains = dict(session.execute(sa.select(T.id, T.replaced_by).where(dead, T.replaced_by.is_not(None))).all())
        keep: set[str] = set()
        heads = dict(chains)  # rotated token -> the successor being looked at
        for _ in range(1000):  # rotations only point to newer rows; bounded all the same
            if not heads:
                break
            rows = {found.id: found for found in session.execute(
                sa.select(T.id, T.replaced_by, T.revoked_at, T.expires_at).where(T.id.in_(set(heads.values())))
            ).all()}
            following: dict[str, str] = {}
            for origin, successor_id in heads.items():
                successor = rows.get(successor_id)
                if successor is None:
                    continue
                if successor.revoked_at is None and (successor.expires_at is None or successor.expires_at > now):
                    keep.add(origin)
                elif successor.replaced_by is not None:
                    following[origin] = successor.replaced_by
            heads = following
        return keep | set(heads)  # a chain too long to follow is kept, not guessed dead

    def notify_expiring(self) -> builtins.list[TokenInfo]:
        """Send ``token_expiring`` once for each live credential that expires
        within APITOKENS_EXPIRY_WARNING_DAYS, and remember it was sent.

        Only for a credential whose whole lifetime is longer than that window: a
        24-hour user-token or a 7-day token is "expiring soon" from its first
        minute, and its owner chose that. Never for a revoked one, nor one
        rotated (``replaced_by`` set: its grace period ends it)."""
        T = self.models.Token
        now = utcnow()
        window = dt.timedelta(days=self.settings["EXPIRY_WARNING_DAYS"])
        candidates = self.db.session.execute(
            sa.select(T.id, T.created_at, T.expires_at).where(
                T.revoked_at.is_(None), T.expiry_notified_at.is_(None), T.replaced_by.is_(None),
                T.expires_at > now, T.expires_at <= now + window, T.kind.in_((TOKEN, KEY, USER_TOKEN)))
        ).all()
        claimed = []
        for token_id, created_at, expires_at in candidates:
            if expires_at - created_at <= window:
                continue
            # Claimed one by one, so two runs at once cannot both warn of the same token.
            result = self.db.session.execute(
                sa.update(T).where(T.id == token_id, T.expiry_notified_at.is_(None), T.revoked_at.is_(None),
                                   T.replaced_by.is_(None))
                .values(expiry_notified_at=now))
            if result.rowcount == 1:
                claimed.append(token_id)
        self.commit()
        infos = [self.info(row) for row in self.db.session.execute(
            sa.select(T).where(T.id.in_(claimed)).order_by(T.expires_at, T.id)).scalars()] if claimed else []
        for info in infos:
            signals.token_expiring.send(self.app, token=info, user_id=info.user_id)
        return infos
