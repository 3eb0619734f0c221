"""The token format: generate, format, parse, hash and verify. Standard library only.

A token reads ``<prefix><public id>:<secret><checksum>``:

- ``public id``: 12 base62 characters from the CSPRNG (about 71 bits). It is the
  row's primary key, so a token is found with one indexed lookup; it is not a
  row number and carries no meaning.
- ``secret``: 43 base62 characters from the CSPRNG (256 bits).
- ``checksum``: CRC32 of everything before it, as 6 base62 characters, so a
  mistyped or made-up token is refused without touching the database, and
  secret scanners can tell a real token from random text (as GitHub's tokens do).

Only an HMAC-SHA256 of ``public id:secret`` keyed with a server-side pepper is
stored, so a copy of the table alone cannot be used to test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from typing import Any, NamedTuple

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PUBLIC_ID_LENGTH = 12
SECRET_LENGTH = 43  # 43 * log2(62) = 256.03 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_]{0,16}")

_BODY = re.compile(
    rf"([0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}}):([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


class ParsedToken(NamedTuple):
    prefix: str
    public_id: str
    secret: str


def random_string(length: int) -> str:
    """``length`` base62 characters from the CSPRNG (rejection-free: 62 choices each)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_public_id() -> str:
    return random_string(PUBLIC_ID_LENGTH)


_PUBLIC_ID = re.compile(rf"[0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}}")


def is_public_id(text: object) -> bool:
    """Whether ``text`` could be a credential's public id (so it is worth a
    lookup; PostgreSQL refuses a NUL in a query)."""
    return isinstance(text, str) and _PUBLIC_ID.fullmatch(text) is not None


# Two base62 digits per table entry: a checksum is three divmods, not six (it
# runs on every request).
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]


def checksum(body: str) -> str:
    high, low = divmod(zlib.crc32(body.encode("ascii")), 3844)  # a CRC32 < 62**6 = 3844**3
    high, middle = divmod(high, 3844)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def format_token(prefix: str, public_id: str, secret: str) -> str:
    body = f"{prefix}{public_id}:{secret}"
    return body + checksum(body)


def generate(prefix: str) -> tuple[str, ParsedToken]:
    """A new token: its plain text (shown once) and its parts."""
    parts = ParsedToken(prefix, new_public_id(), random_string(SECRET_LENGTH))
    return format_token(*parts), parts


def parse(text: str, prefix: str) -> ParsedToken | None:
    """The parts of ``text`` if it is a well-formed token with ``prefix`` and a
    right checksum; None otherwise. Never raises, never touches a database."""
    if not text.startswith(prefix):
        return None
    match = _BODY.fullmatch(text, len(prefix))
    if match is None:
        return None
    public_id, secret, check = match.groups()
    if not hmac.compare_digest(checksum(text[: -CHECKSUM_LENGTH]), check):
        return None
    return ParsedToken(prefix, public_id, secret)


class Hasher:
    """Keyed digests of token secrets, with fallback peppers for key rotation.

    HMAC-SHA256 (RFC 2104) built from two SHA-256 states prepared once per
    pepper, the key already absorbed, and copied per digest. The result is
    ``hmac.new(pepper, message, sha256).digest()`` byte for byte, but it runs
    on every request: copying a keyed ``hmac.HMAC`` goes through OpenSSL's
    HMAC context copy, 1.3 µs in a loop yet about 20 µs when the caches are
    cold, as they are between requests; two SHA-256 copies take 2.6 µs cold.
    """

    def __init__(self, pepper: bytes, fallbacks: tuple[bytes, ...] = ()) -> None:
        self._keyed = [_hmac_states(key) for key in (pepper, *fallbacks)]

    def _digest(self, index: int, public_id: str, secret: str) -> bytes:
        inner_state, outer_state = self._keyed[index]
        inner = inner_state.copy()
        inner.update(f"{public_id}:{secret}".encode("ascii"))
        outer = outer_state.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digest(self, public_id: str, secret: str) -> bytes:
        """The digest stored for a new token (always with the current pepper)."""
        return self._digest(0, public_id, secret)

    def verify(self, public_id: str, secret: str, stored: bytes | None) -> bool:
        """Constant-time check of ``secret`` against ``stored``, trying the
        current pepper first and then each fallback."""
        if not stored:
            return False
        for index in range(len(self._keyed)):
            if hmac.compare_digest(self._digest(index, public_id, secret), stored):
                return True
        return False


def _hmac_states(key: bytes) -> tuple[Any, Any]:
    """The inner and outer SHA-256 states of HMAC with ``key`` (RFC 2104, section 2)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return (hashlib.sha256(bytes(byte ^ 0x36 for byte in key)),
            hashlib.sha256(bytes(byte ^ 0x5C for byte in key)))


def derive_key(secret_key: str | bytes, purpose: str) -> bytes:
    """A key for ``purpose`` derived from the application's ``SECRET_KEY``."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode("utf-8")
    return hmac.new(secret_key, b"flask-apitokens:" + purpose.encode(), hashlib.sha256).digest()
