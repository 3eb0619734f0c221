"""Leaked credentials: revoke what a finder reports, and tell the owner.

Used by ``POST /api/credentials/revoke`` (anyone may report) and by GitHub's
secret scanning partner endpoint (:mod:`flask_apitokens.secret_scanning`). No
request objects here.

A report costs at most one lookup, whatever it holds: every string is first
parsed and its checksum checked (:func:`flask_apitokens.crypto.parse`), a
user-token JWT's signature verified, all without the database; then ONE query
reads the rows of every public id left (``IN``), and each secret is checked
against its row's digest in constant time. Only a complete, valid secret of a
live credential revokes anything: a right id with a wrong secret does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import signals
from .models import utcnow
from .service import KEY, OAUTH2, PERSONAL_KINDS, REFRESH, TOKEN, USER_TOKEN, TokenInfo, TokenService
from .tokeninfo import MAX_CREDENTIAL_LENGTH

#: Most strings one report may hold (as GitHub's credential revocation API).
MAX_REPORTED = 1000
#: ``revoked_reason`` of a reported credential (the token page says "reported as leaked").
LEAKED = "leaked"
#: Kinds a finder can report, in the order their prefixes are tried.
_PREFIXED_KINDS = (TOKEN, KEY, OAUTH2, REFRESH)


@dataclass(frozen=True)
class Candidate:
    """A reported string that has the shape of one of our credentials."""

    text: str
    kind: str
    public_id: str
    secret: str | None  # None for a user-token: its signature was the proof


def candidates(service: TokenService, texts: Iterable[str]) -> list[Candidate]:
    """The reported strings that parse as our credentials (checksum or JWT
    signature right). No database work."""
    found: list[Candidate] = []
    for text in texts:
        if not isinstance(text, str) or not text or len(text) > MAX_CREDENTIAL_LENGTH:
            continue
        credential = text.strip()  # as pasted; ``text`` stays the key the caller knows
        parsed = service.parse(credential, _PREFIXED_KINDS)
        if parsed is not None:
            kind, parts = parsed
            found.append(Candidate(text, kind, parts.public_id, parts.secret))
            continue
        if credential.count(".") == 2:  # a JWT
            public_id = service.user_tokens.record_id(credential)
            if public_id is not None:
                found.append(Candidate(text, USER_TOKEN, public_id, None))
    return found


def live_credentials(service: TokenService, found: list[Candidate]) -> dict[str, TokenInfo]:
    """Reported text -> the live credential it proves: ONE query for all the ids."""
    if not found:
        return {}
    T = service.models.Token
    ids = sorted({candidate.public_id for candidate in found})
    now = utcnow()
    rows = {row.id: row for row in service.db.session.execute(
        sa.select(T).where(T.id.in_(ids), T.revoked_at.is_(None),
                           sa.or_(T.expires_at.is_(None), T.expires_at > now))
    ).scalars()}
    live: dict[str, TokenInfo] = {}
    for candidate in found:
        row = rows.get(candidate.public_id)
        if row is None or row.kind != candidate.kind:
            continue
        if candidate.secret is None:
            proven = row.digest is None  # a user-token record has no digest
        else:
            proven = service.hasher.verify(row.id, candidate.secret, row.digest)
        if proven:
            live[candidate.text] = service.info(row)
    return live


def revoke_reported(service: TokenService, texts: Iterable[str], *, reporter: str | None,
                    source: str, urls: dict[str, str | None] | None = None) -> dict[str, TokenInfo]:
    """Revoke every live credential among ``texts`` (reason ``leaked``, and what
    came from it), then send ``credential_leaked`` for each. Returns reported
    text -> the credential it revoked. ``urls``: where each text was found."""
    live = live_credentials(service, candidates(service, texts))
    if not live:
        return {}
    service.revoke([info.id for info in live.values()], reason=LEAKED)
    seen: set[str] = set()
    for text, info in live.items():
        if info.id in seen:
            continue
        seen.add(info.id)
        signals.credential_leaked.send(service.app, token=info, user_id=info.user_id, reporter=reporter,
                                       source=source, url=(urls or {}).get(text))
    return live


def revoke_all(state: Any, user_id: Any, *, reason: str) -> list[str]:
    """Log a person out everywhere: revoke every credential they hold (tokens,
    user-tokens, OAuth2 access and refresh tokens; API keys are the
    administrator's), forget the OAuth2 apps they approved and spend their
    codes not yet exchanged. Used by ``DELETE /api/tokens`` and
    :meth:`~flask_apitokens.APITokens.revoke_all`. Returns the ids revoked."""
    from .oauth2.grants_store import forget_user

    revoked = state.service.revoke_all(user_id, kinds=(*PERSONAL_KINDS, REFRESH), reason=reason)
    forget_user(user_id)
    return revoked  # type: ignore[no-any-return]
