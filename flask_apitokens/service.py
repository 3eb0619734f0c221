"""TokenService: issue, authenticate, revoke, rotate, list and purge credentials.

No request objects here, and no Flask: the Flask layer passes in what it read
(the credential text, the client address) and turns results and errors into
responses. The service is three modules, one job each: the check of a
presented credential, which runs on every protected request
(:mod:`~flask_apitokens.tokencheck`); issuing, rotating, listing and revoking
(here); and housekeeping, purging and expiry warnings
(:mod:`~flask_apitokens.housekeeping`). The credential's kinds and
descriptions are :mod:`~flask_apitokens.tokeninfo`'s, importable from here too.
"""

from __future__ import annotations

import builtins  # the method `list` below shadows the built-in in later annotations
import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from . import crypto, dberrors, errors, signals
from .config import Settings
from .housekeeping import Housekeeping
from .models import Models, utcnow
from .revocation import revoke_lineage
from .tokencheck import TokenCheck
from .tokeninfo import (
    DEFAULT,
    KEY,
    OAUTH2,
    PERSONAL_KINDS,
    REFRESH,
    TOKEN,
    USER_TOKEN,
    IssuedToken,
    TokenInfo,
    iso,
)
from .users import UserStore
from .usertoken import UserTokenCodec

__all__ = ["DEFAULT", "KEY", "OAUTH2", "PERSONAL_KINDS", "REFRESH", "TOKEN", "USER_TOKEN", "IssuedToken",
           "TokenInfo", "TokenService", "iso"]

_PENDING_ISSUED = "apitokens.pending-issued"


class TokenService(TokenCheck, Housekeeping):
    """Every operation on credentials, for one application.

    :param app: only the sender of the signals (any object).
    """

    def __init__(self, app: Any, db: Any, models: Models, users: UserStore, settings: Settings) -> None:
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
        self.user_tokens = UserTokenCodec.from_settings(settings)
        self._prepare_check(settings)

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
        dberrors.commit(session)
        issued = session.info.get(_PENDING_ISSUED)
        while issued:
            info, user_id, via = issued.pop(0)
            signals.token_issued.send(self.app, token=info, user_id=user_id, via=via)

    @staticmethod
    def info(row: Any) -> TokenInfo:
        return TokenInfo.from_row(row)

    # -- managing ------------------------------------------------------------------
    def find(self, text: Any, kinds: Iterable[str]) -> Any | None:
        """The row of the credential ``text`` when it is one of ``kinds`` (tried in
        that order) and its secret matches the stored digest; None for anything
        else. The OAuth2 endpoints find the tokens presented to them with it; it
        checks neither expiry nor revocation, which they answer in their own words."""
        found = self.parse(text, kinds) if isinstance(text, str) and text else None
        if found is None:
            return None
        kind, parsed = found
        row = self.db.session.get(self.models.Token, parsed.public_id)
        if row is None or row.kind != kind or not self.hasher.verify(row.id, parsed.secret, row.digest):
            return None
        return row

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
        revoked = revoke_lineage(self.db.session, self.models, ids, owned, reason)
        self.commit()
        if revoked:
            signals.token_revoked.send(self.app, token_ids=revoked, user_id=user_id, reason=reason)
        return revoked

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
