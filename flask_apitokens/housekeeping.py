"""Housekeeping of the token table, run by the CLI or a scheduled job, never
by a request: deleting what is dead (``flask apitokens purge-expired``) and
warning of credentials about to expire (``token_expiring``).

A base of :class:`~flask_apitokens.service.TokenService`, whose public methods
these are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from . import dberrors, recent_uses, signals
from .config import Settings
from .models import Models, utcnow
from .tokeninfo import KEY, REFRESH, TOKEN, USER_TOKEN, TokenInfo


class Housekeeping:
    app: Any  # only the sender of the signals
    db: Any
    models: Models
    settings: Settings
    #: TokenService's: commits the host's session, and sends what waited for the commit.
    commit: Callable[[], None]

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

    def notify_expiring(self) -> list[TokenInfo]:
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
        infos = [TokenInfo.from_row(row) for row in self.db.session.execute(
            sa.select(T).where(T.id.in_(claimed)).order_by(T.expires_at, T.id)).scalars()] if claimed else []
        for info in infos:
            signals.token_expiring.send(self.app, token=info, user_id=info.user_id)
        return infos
