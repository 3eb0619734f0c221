"""What a credential is, as the rest of the package sees it: its kinds, the
public description of one (:class:`TokenInfo`) and a new one with its secret
(:class:`IssuedToken`). Plain data, no database and no Flask: every layer
imports it, and it imports nothing of the package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

#: Kinds of credential, and the scheme each is presented with.
TOKEN, KEY, USER_TOKEN, OAUTH2 = "token", "key", "user-token", "oauth2"
#: OAuth2 refresh tokens: stored like the others, never accepted on protected views.
REFRESH = "refresh"
#: Kinds a person manages as "their tokens" (keys are the administrator's).
PERSONAL_KINDS = (TOKEN, USER_TOKEN, OAUTH2)

#: Longer credentials are refused without further work.
MAX_CREDENTIAL_LENGTH = 4096

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

    @classmethod
    def from_row(cls, row: Any) -> TokenInfo:
        """The description of a token table row (an ORM object or a Core row)."""
        return cls(row.id, row.user_id, row.kind, row.via, row.name, frozenset(row.scopes.split()),
                   row.created_at, row.expires_at, row.last_used_at, row.revoked_at, row.client_id,
                   row.revoked_reason)

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
