"""The token format: randomness, checksum, parsing and keyed digests."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_apitokens import crypto


def test_generated_token_parses_back_to_its_parts() -> None:
    text, parts = crypto.generate("apt_")
    assert text.startswith("apt_") and ":" in text
    assert crypto.parse(text, "apt_") == parts
    assert len(parts.public_id) == crypto.PUBLIC_ID_LENGTH


def test_secret_has_at_least_256_bits() -> None:
    assert crypto.SECRET_LENGTH * math.log2(len(crypto.ALPHABET)) >= 256
    secrets_seen = {crypto.generate("x")[1].secret for _ in range(200)}
    assert len(secrets_seen) == 200


def test_public_id_is_random_not_a_counter() -> None:
    ids = [crypto.new_public_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids != sorted(ids)


@pytest.mark.parametrize("position", [0, 5, 17, 40, -1])
def test_a_single_typo_fails_the_checksum(position: int) -> None:
    text, _ = crypto.generate("apt_")
    index = len("apt_") + position if position >= 0 else len(text) + position
    if text[index] == ":":
        index += 1
    typo = text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]
    assert crypto.parse(typo, "apt_") is None


def test_wrong_prefix_or_shape_is_refused() -> None:
    text, _ = crypto.generate("apt_")
    assert crypto.parse(text, "apk_") is None
    assert crypto.parse(text.replace(":", ""), "apt_") is None
    assert crypto.parse(text + "x", "apt_") is None
    assert crypto.parse("", "apt_") is None


@given(st.text(max_size=200))
def test_parse_never_raises(text: str) -> None:
    assert crypto.parse(text, "apt_") is None or text.startswith("apt_")


def test_digest_is_keyed_and_verify_is_exact() -> None:
    _, parts = crypto.generate("apt_")
    hasher = crypto.Hasher(b"p" * 32)
    stored = hasher.digest(parts.public_id, parts.secret)
    assert parts.secret.encode() not in stored
    assert hasher.verify(parts.public_id, parts.secret, stored)
    wrong = parts.secret[:-1] + ("x" if parts.secret[-1] != "x" else "y")
    assert not hasher.verify(parts.public_id, wrong, stored)
    assert not hasher.verify(parts.public_id, parts.secret, None)
    assert crypto.Hasher(b"q" * 32).digest(parts.public_id, parts.secret) != stored


@given(pepper=st.binary(min_size=1, max_size=200), public_id=st.text(alphabet=crypto.ALPHABET, max_size=20),
       secret=st.text(alphabet=crypto.ALPHABET, max_size=60))
def test_digest_is_hmac_sha256_of_id_and_secret(pepper: bytes, public_id: str, secret: str) -> None:
    # The stored digest is plain HMAC-SHA256, whatever the pepper's length
    # (keys longer than SHA-256's block are hashed first, as RFC 2104 says).
    expected = hmac.new(pepper, f"{public_id}:{secret}".encode("ascii"), hashlib.sha256).digest()
    assert crypto.Hasher(pepper).digest(public_id, secret) == expected


def test_fallback_pepper_still_verifies_old_digests() -> None:
    _, parts = crypto.generate("apt_")
    old = crypto.Hasher(b"old" * 8).digest(parts.public_id, parts.secret)
    assert not crypto.Hasher(b"new" * 8).verify(parts.public_id, parts.secret, old)
    assert crypto.Hasher(b"new" * 8, (b"old" * 8,)).verify(parts.public_id, parts.secret, old)


def test_derived_keys_differ_by_purpose() -> None:
    assert crypto.derive_key("secret", "pepper") != crypto.derive_key("secret", "user-token")
    assert crypto.derive_key("secret", "pepper") == crypto.derive_key(b"secret", "pepper")
