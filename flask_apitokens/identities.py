"""Local users for outside identities: a directory entry (LDAP), an account at
an OAuth provider. An ``apitokens_identity`` row links (provider, subject) to a
local user, so the link survives changes of the outside account's name or
email; it is made on first sight.

Two first logins of the same identity at once make one user: the loser's
insert fails on a unique key (the link's, or the user name the winner just
took), its transaction is rolled back and it takes the winner's link.

No Flask here: the caller gives the session, the identity model and the user
store, and turns a missing link into its own error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import errors
from .users import UserStore

#: How many user names :meth:`IdentityLinks.free_username` tries before giving up.
USERNAME_TRIES = 20


@dataclass(frozen=True)
class OutsideIdentity:
    """Who an outside system says someone is."""

    #: ``ldap``, or the provider's configured name (``github``, ...).
    provider: str
    #: The outside account's stable id (an entry's ``entryUUID``, a provider's user id).
    subject: str
    #: The email kept on the link.
    email: str | None


@dataclass(frozen=True)
class Link:
    """An identity's link and its local user (None when that user is gone)."""

    row: Any
    user: Any | None
    #: True when made just now; False when it was there, or a concurrent first login just made it.
    made: bool


class AccountTaken(Exception):  # noqa: N818  (a signal between make_user and link_first, never shown)
    """Raised by ``make_user`` (see :meth:`IdentityLinks.link_first`): an existing
    local account holds the identity's name or email. A conflict, unless a
    concurrent first login of the same identity made that account."""


class IdentityLinks:
    def __init__(self, session: Any, identity_model: Any, users: UserStore) -> None:
        self.session = session
        self.Identity = identity_model
        self.users = users

    def find(self, identity: OutsideIdentity) -> Link | None:
        Identity = self.Identity
        row = self.session.execute(
            sa.select(Identity).where(Identity.provider == identity.provider, Identity.subject == identity.subject)
        ).scalar_one_or_none()
        if row is None:
            return None
        return Link(row, self.users.get(row.user_id), made=False)

    def link_first(self, identity: OutsideIdentity, make_user: Callable[[], Any]) -> Link | None:
        """Link ``identity`` to the user ``make_user()`` gives (an existing one, or one
        it creates; it raises :class:`AccountTaken` to refuse) and flush. When that
        fails because a concurrent first login of the same identity won, the
        winner's link; None when there is none (a real conflict). Does not commit."""
        try:
            user = make_user()
            row = self.Identity(user_id=self.users.user_id(user), provider=identity.provider,
                                subject=identity.subject, email=identity.email)
            self.session.add(row)
            self.session.flush()
            return Link(row, user, made=True)
        except (sa.exc.IntegrityError, AccountTaken):
            # A fresh transaction, so the winner's committed link is visible.
            self.session.rollback()
        return self.find(identity)

    def free_username(self, wanted: str, provider: str) -> str:
        """``wanted``, or ``wanted-<provider>``, ``wanted-<provider>-2``, ... when taken."""
        base = wanted[:64] or provider
        candidates = [base, f"{base}-{provider}"] + [f"{base}-{provider}-{n}" for n in range(2, USERNAME_TRIES)]
        for candidate in candidates:
            if self.users.find_by_login(candidate) is None:
                return candidate
        raise errors.AccountConflict("No free user name could be found for this account.")
