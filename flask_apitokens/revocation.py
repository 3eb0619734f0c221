"""Revoking credentials with their lineage, in the session given: the host's
(:meth:`TokenService.revoke <flask_apitokens.service.TokenService.revoke>`) or,
for the token check, one of its own (a check never writes through the host's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import dberrors
from .models import Models, utcnow


def revoke_lineage(session: Any, models: Models, ids: Sequence[str], owned: Sequence[Any], reason: str) -> list[str]:
    """Revoke the live ones of ``ids`` and of their lineage (see :func:`lineage`),
    among the rows ``owned`` allows. Not committed. Returns the ids revoked."""
    T = models.Token
    found = lineage(session, models, ids, owned)
    live = set(session.execute(sa.select(T.id).where(T.id.in_(found), T.revoked_at.is_(None))).scalars())
    revoked = [token_id for token_id in found if token_id in live]
    if revoked:
        session.execute(sa.update(T).where(T.id.in_(revoked), T.revoked_at.is_(None))
                        .values(revoked_at=utcnow(), revoked_reason=reason[:32])
                        .execution_options(synchronize_session=False))
    return revoked


def revoke_apart(engine: Any, models: Models, ids: Sequence[str], owned: Sequence[Any], reason: str) -> list[str]:
    """:func:`revoke_lineage` in a session of its own, committed: for revocations
    that happen while the host's session may hold a request's pending work (the
    token check, receivers of ``token_revoked``). A database error is a 503."""
    with Session(engine) as session:
        revoked = revoke_lineage(session, models, ids, owned, reason)
        dberrors.commit(session)
    return revoked


def lineage(session: Any, models: Models, ids: Sequence[str], owned: Sequence[Any]) -> Sequence[str]:
    """``ids`` and every row linked to them downwards (children) or through a
    rotation (successor and predecessor), however deep and whatever state the
    rows between are in, in the order found."""
    T = models.Token
    found = [*dict.fromkeys(ids)]
    seen = set(found)
    frontier = found
    while frontier:
        rows = session.execute(
            sa.select(T.id, T.replaced_by).where(
                *owned, sa.or_(T.id.in_(frontier), T.parent_id.in_(frontier), T.replaced_by.in_(frontier)))
        ).all()
        new = [*dict.fromkeys(token_id for pair in rows for token_id in pair
                              if token_id is not None and token_id not in seen)]
        seen.update(new)
        found += new
        frontier = new
    return found
