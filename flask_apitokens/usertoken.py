"""The user-token JWT: its claims, signing and checking. No Flask, no database.

HS256, signed with joserfc (``authlib.jose`` is deprecated). Its ``jti`` is the
public id of a ``user-token`` record in the token table, so the token is
listed, revoked and refused once expired like every other credential: the
signature proves the JWT is ours, the record says whether it is still good.
The token service checks a JWT presented as a bearer credential with
:meth:`UserTokenCodec.record_id`; the routes that make and describe one are in
:mod:`flask_apitokens.methods.user_token`.
"""

from __future__ import annotations

import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import OctKey

from .config import Settings
from .tokeninfo import MAX_CREDENTIAL_LENGTH, TokenInfo

ALGORITHM = "HS256"
#: Seconds of clock difference allowed between the processes that sign and verify.
LEEWAY = 30
#: 9999-12-31 23:59:59 UTC: a later ``exp`` is not a date.
MAX_TIMESTAMP = 253402300799


class UserTokenClaims(jwt.JWTClaimsRegistry):
    """The claims every JWT of ours carries (``exp`` too, unless user-tokens
    never expire). ``exp`` must be whole seconds; whether it has passed is only
    checked with ``check_expiry`` (the info route says "expired" itself)."""

    def __init__(self, *, check_expiry: bool = True) -> None:
        super().__init__(leeway=LEEWAY, iat={"essential": True}, jti={"essential": True},
                         user={"essential": True})
        self.check_expiry = check_expiry

    def validate_exp(self, value: object) -> None:
        # Whole seconds within what a date can hold (we only ever sign those).
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_TIMESTAMP:
            raise InvalidClaimError("exp", "Claim 'exp' must be a NumericDate value")
        if self.check_expiry:
            super().validate_exp(value)


_CHECKED, _UNCHECKED = UserTokenClaims(), UserTokenClaims(check_expiry=False)


def timestamp(moment: dt.datetime) -> int:
    """Whole seconds since the epoch of a naive UTC time."""
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp())


def claims_for(info: TokenInfo, profile: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The claims of the JWT for the record ``info`` of the user ``profile``
    describes (Datasentinel's: ``user``, ``email``, ``database`` the organization)."""
    found: dict[str, Any] = {
        "iat": timestamp(info.created_at or now),
        "user": profile["username"],
        "email": profile["email"],
        "database": profile["organization"],
        "jti": info.id,
    }
    if info.expires_at is not None:
        found["exp"] = timestamp(info.expires_at)
    if info.scopes:
        found["scope"] = " ".join(sorted(info.scopes))
    return found


class UserTokenCodec:
    """Signs user-token JWTs with the current key, verifies with it and the fallbacks."""

    def __init__(self, key: bytes, fallbacks: Sequence[bytes] = ()) -> None:
        self.signing_key = OctKey.import_key(key)
        self.verifying_keys = [self.signing_key, *(OctKey.import_key(old) for old in fallbacks)]

    @classmethod
    def from_settings(cls, settings: Settings) -> UserTokenCodec:
        return cls(settings.user_token_key, settings.user_token_key_fallbacks)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, self.signing_key, algorithms=[ALGORITHM])

    def verify(self, text: str, *, check_expiry: bool = True) -> dict[str, Any] | None:
        """The claims of ``text`` if it is an HS256 JWT signed with one of our
        keys and carrying our claims (and, with ``check_expiry``, not expired);
        None otherwise. Never raises, whatever the text."""
        if not isinstance(text, str) or len(text) > MAX_CREDENTIAL_LENGTH or text.count(".") != 2:
            return None
        for key in self.verifying_keys:
            try:
                token = jwt.decode(text, key, algorithms=[ALGORITHM])
            except (JoseError, ValueError, TypeError, binascii.Error):
                continue  # a bad signature under this key: try the next one
            found = token.claims
            if token.header.get("alg") != ALGORITHM:
                return None
            try:
                (_CHECKED if check_expiry else _UNCHECKED).validate(found)
            except (JoseError, ValueError, TypeError):
                return None
            return found
        return None

    def record_id(self, text: str) -> str | None:
        """The public id of the record a valid, unexpired JWT of ours names,
        else None (the token service then checks the record)."""
        found = self.verify(text)
        return found["jti"] if found is not None else None
