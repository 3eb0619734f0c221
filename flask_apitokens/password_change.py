"""``APITOKENS_REVOKE_ON_PASSWORD_CHANGE``: a new password ends every credential
of its person, in the same transaction as the new password.

A session ``after_flush`` listener looks at the users the flush wrote: for each
whose password attribute changed, one UPDATE (on the flush's own connection,
so it commits or rolls back with the host's change) revokes their tokens,
user-tokens and OAuth2 tokens with the reason ``password_changed``, and, as
"log out everywhere" does, their OAuth2 approvals go and codes are spent.
``token_revoked`` is sent after the commit, never for a change rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import signals
from .models import utcnow
from .service import OAUTH2, REFRESH, TOKEN, USER_TOKEN
from .state import state_if_set_up

if TYPE_CHECKING:
    from .state import State

REASON = "password_changed"
_PENDING = "apitokens.password-revoked"
_COMMITTED = "apitokens.password-revoked-committed"
_LISTENING = "apitokens.password-listener"


def password_attribute(state: State, user_model: Any) -> str:
    name = state.settings["PASSWORD_ATTRIBUTE"]
    columns = user_model.__table__.c
    if name is None:
        name = next((n for n in ("password_hash", "password") if n in columns), None)
    if name is None or name not in sa.inspect(user_model).attrs:  # a mapped attribute, with history
        raise RuntimeError("APITOKENS_PASSWORD_ATTRIBUTE: name the user model's password attribute")
    return str(name)


def install(state: State, user_model: Any) -> None:
    """Watch ``user_model``'s password for the application of ``state``. The
    listener is on the db's session class, once; it acts only for an
    application that switched the setting on."""
    state.password_watch = (user_model, password_attribute(state, user_model))
    info = state.db.metadata.info
    if info.get(_LISTENING):
        return
    info[_LISTENING] = True
    sa.event.listen(state.db.session, "after_flush", _after_flush)
    sa.event.listen(state.db.session, "after_commit", _after_commit)
    sa.event.listen(state.db.session, "after_transaction_end", _after_transaction_end)
    sa.event.listen(state.db.session, "after_rollback", _forget)


def _forget(session: Any) -> None:
    session.info.pop(_PENDING, None)


def _state() -> State | None:
    state = state_if_set_up()
    if state is None or not state.settings["REVOKE_ON_PASSWORD_CHANGE"]:
        return None
    return state


def _after_flush(session: Any, flush_context: Any) -> None:
    state = _state()
    if state is None:
        return
    if state.password_watch is None:
        return
    model, attribute = state.password_watch
    user_ids = [
        state.users.user_id(obj) for obj in session.dirty
        if isinstance(obj, model) and sa.inspect(obj).attrs[attribute].history.has_changes()
    ]
    if not user_ids:
        return
    t = state.models.token_table
    where = [t.c.user_id.in_(user_ids), t.c.kind.in_((TOKEN, USER_TOKEN, OAUTH2, REFRESH)), t.c.revoked_at.is_(None)]
    connection = session.connection()
    ids = list(connection.execute(sa.select(t.c.id, t.c.user_id).where(*where)))
    now = utcnow()
    connection.execute(sa.update(t).where(*where).values(revoked_at=now, revoked_reason=REASON))
    # As log out everywhere: the OAuth2 approvals go, unexchanged codes are spent.
    oauth2 = state.oauth2_models
    if oauth2 is not None:
        grants, codes = oauth2.Grant.__table__, oauth2.Code.__table__
        connection.execute(sa.delete(grants).where(grants.c.user_id.in_(user_ids)))
        connection.execute(sa.update(codes).where(codes.c.user_id.in_(user_ids), codes.c.used_at.is_(None))
                           .values(used_at=now))
    session.info.setdefault(_PENDING, []).extend(ids)


def _after_commit(session: Any) -> None:
    # The session may emit no SQL in after_commit, and receivers (the OAuth2
    # family revoker) do: send once the transaction has ended.
    if session.info.get(_PENDING):
        session.info[_COMMITTED] = session.info.pop(_PENDING)


def _after_transaction_end(session: Any, transaction: Any) -> None:
    revoked = session.info.pop(_COMMITTED, None) if transaction.parent is None else None
    state = state_if_set_up()
    if not revoked or state is None:
        return
    by_user: dict[Any, list[str]] = {}
    for token_id, user_id in revoked:
        by_user.setdefault(user_id, []).append(token_id)
    app = state.app
    for user_id, token_ids in by_user.items():
        signals.token_revoked.send(app, token_ids=token_ids, user_id=user_id, reason=REASON)
