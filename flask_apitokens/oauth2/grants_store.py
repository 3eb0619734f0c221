"""The apps a user approved, for the token page: list them, and take one back.

- :func:`list_approved_apps` ``(user)`` -> list of :class:`ApprovedApp`
  (client id and name, scopes approved, first and last approval, live tokens).
- :func:`revoke_app` ``(user, client_id)`` -> ids of the tokens revoked; forgets
  the approval, so the app must ask again.
- :func:`forget_user` ``(user_id)``: every approval of the person goes, and
  their codes not yet exchanged are spent (log out everywhere).
- :func:`approved_scopes` ``(state, user, client_id)``: what the consent page
  need not ask again (see ``oauth2/views.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..models import utcnow
from ..service import OAUTH2, REFRESH, iso
from ..state import state as current_state
from .clients import revoke_client_tokens


@dataclass(frozen=True)
class ApprovedApp:
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    approved_at: dt.datetime
    last_approved_at: dt.datetime
    #: Live access and refresh tokens the app holds for this user.
    live_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_name": self.client_name, "scopes": list(self.scopes),
                "approvedOn": iso(self.approved_at), "lastApprovedOn": iso(self.last_approved_at),
                "liveTokens": self.live_tokens}


def record_grant(state: Any, user: Any, client: Any, scopes: list[str], *, commit: bool = True) -> None:
    """Remember that ``user`` approved ``client`` for ``scopes`` (added to earlier ones)."""
    Grant = state.oauth2_models.Grant
    user_id = state.users.user_id(user)
    session = state.db.session
    row = session.execute(sa.select(Grant).filter_by(user_id=user_id, client_id=client.client_id)).scalar()
    now = utcnow()
    if row is None:
        session.add(Grant(user_id=user_id, client_id=client.client_id, scopes=" ".join(sorted(set(scopes))),
                          created_at=now, updated_at=now))
    else:
        row.scopes = " ".join(sorted(set(row.scopes.split()) | set(scopes)))
        row.updated_at = now
    if commit:
        state.service.commit()


def approved_scopes(state: Any, user: Any, client_id: str) -> frozenset[str] | None:
    """The scopes ``user`` approved for ``client_id`` so far, or None if never (or taken back)."""
    Grant = state.oauth2_models.Grant
    scopes = state.db.session.execute(sa.select(Grant.scopes).where(
        Grant.user_id == state.users.user_id(user), Grant.client_id == client_id)).scalar()
    return None if scopes is None else frozenset(scopes.split())


def list_approved_apps(user: Any) -> list[ApprovedApp]:
    """The apps ``user`` approved, most recently approved first."""
    state = current_state()
    models = state.oauth2_models
    T = state.models.Token
    user_id = state.users.user_id(user)
    now = utcnow()
    live = (
        sa.select(T.client_id, sa.func.count().label("n"))
        .where(T.user_id == user_id, T.kind.in_((OAUTH2, REFRESH)), T.revoked_at.is_(None),
               sa.or_(T.expires_at.is_(None), T.expires_at > now))
        .group_by(T.client_id).subquery()
    )
    rows = state.db.session.execute(
        sa.select(models.Grant, models.Client.name, live.c.n)
        .join(models.Client, models.Client.client_id == models.Grant.client_id)
        .outerjoin(live, live.c.client_id == models.Grant.client_id)
        .where(models.Grant.user_id == user_id)
        .order_by(models.Grant.updated_at.desc(), models.Grant.client_id)
    ).all()
    return [ApprovedApp(grant.client_id, name, tuple(grant.scopes.split()), grant.created_at, grant.updated_at,
                        int(count or 0)) for grant, name, count in rows]


def revoke_app(user: Any, client_id: str) -> list[str]:
    """Take back ``user``'s approval of ``client_id``: revoke its tokens for
    this user and forget the approval. Returns the revoked token ids."""
    state = current_state()
    user_id = state.users.user_id(user)
    revoked = revoke_client_tokens(client_id, user_id=user_id, reason="app_revoked")
    Grant = state.oauth2_models.Grant
    state.db.session.execute(sa.delete(Grant).where(Grant.user_id == user_id, Grant.client_id == client_id))
    state.service.commit()
    return revoked


def forget_user(user_id: Any) -> None:
    """Forget every app ``user_id`` approved, and spend their authorization
    codes not yet exchanged (marked used, so an app presenting one gets
    ``invalid_grant``). Their tokens are revoked by the caller."""
    state = current_state()
    models = state.oauth2_models
    session = state.db.session
    session.execute(sa.delete(models.Grant).where(models.Grant.user_id == user_id))
    session.execute(sa.update(models.Code).where(models.Code.user_id == user_id, models.Code.used_at.is_(None))
                    .values(used_at=utcnow()).execution_options(synchronize_session=False))
    state.service.commit()
