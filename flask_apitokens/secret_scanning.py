"""GitHub's secret scanning partner program: check that an alert comes from GitHub.

GitHub signs each alert's raw body with ECDSA (P-256, SHA-256) and names the
key in ``Github-Public-Key-Identifier``; the base64 DER signature is in
``Github-Public-Key-Signature``. Its public keys are published at
``APITOKENS_SECRET_SCANNING_KEYS_URL`` as
``{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}``.

:class:`KeyStore` fetches them when a key id is not known yet (at the first
alert, and when GitHub starts signing with a new key), at most once per
:data:`REFETCH_INTERVAL` seconds, within the configured timeout and at most
:data:`~flask_apitokens.providers.http.MAX_BODY` bytes (the providers' bounded
HTTP client). The signature is checked with ``cryptography``. No request
objects here; the route is in :mod:`flask_apitokens.views.leaks`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from . import errors

log = logging.getLogger("flask_apitokens")

#: Seconds between two fetches of the key list (an unknown key id asks again only after it).
REFETCH_INTERVAL = 60.0
#: Longest signature header read (a P-256 DER signature is at most 72 bytes, 96 in base64).
MAX_SIGNATURE = 256


class InvalidSignatureError(errors.BadRequest):
    code = "invalid_signature"
    message = "The alert's signature does not verify against GitHub's published keys."


class KeysUnavailable(errors.ServiceUnavailable):
    code = "secret_scanning_keys_unavailable"
    message = "GitHub's secret scanning keys cannot be fetched; try again shortly."


class KeyStore:
    """GitHub's public keys by identifier, fetched on demand."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        """The key ``key_id``; fetches the list if it is unknown. Raises
        InvalidSignatureError for a key id GitHub does not publish, KeysUnavailable
        when the list cannot be fetched."""
        found = self.keys.get(key_id)
        if found is not None:
            return found
        with self._lock:
            found = self.keys.get(key_id)
            if found is not None:
                return found
            recent = self._fetched_at is not None and time.monotonic() - self._fetched_at < REFETCH_INTERVAL
            if not recent:
                self._fetched_at = time.monotonic()
                self.keys = self._fetch()
            elif not self.keys:
                raise KeysUnavailable()  # the last fetch failed a moment ago
        found = self.keys.get(key_id)
        if found is None:
            raise InvalidSignatureError("The alert is signed with a key GitHub does not publish.")
        return found

    def _fetch(self) -> dict[str, ec.EllipticCurvePublicKey]:
        from .providers.http import ProviderHTTP

        try:
            reply = ProviderHTTP(timeout=self.timeout).get("GitHub secret scanning keys", self.url, access_token=None)
        except errors.APITokensError as exc:
            raise self._unavailable(exc.message) from exc
        listed = reply.data.get("public_keys") if isinstance(reply.data, dict) else None
        if not isinstance(listed, list):
            raise self._unavailable("the answer has no public_keys list")
        keys = {}
        for entry in listed:
            if not isinstance(entry, dict):
                continue
            key_id, pem = entry.get("key_identifier"), entry.get("key")
            if not isinstance(key_id, str) or not isinstance(pem, str):
                continue
            try:
                public_key = load_pem_public_key(pem.encode("ascii"))
            except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
                continue
            if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
                keys[key_id] = public_key
        if not keys:
            raise self._unavailable("the list has no usable ECDSA P-256 key")
        return keys

    def _unavailable(self, why: str) -> KeysUnavailable:
        """The 503 every failed fetch answers, logged with why: every alert is
        refused until the keys can be fetched again."""
        log.warning("flask-apitokens: GitHub's secret scanning keys at %s cannot be used: %s", self.url, why)
        return KeysUnavailable()


def verify(store: KeyStore, body: bytes, key_id: str | None, signature: str | None) -> None:
    """Raise InvalidSignatureError unless ``signature`` (base64 DER) is the key
    ``key_id``'s ECDSA P-256/SHA-256 signature of ``body``."""
    if not key_id or not signature or len(key_id) > MAX_SIGNATURE or len(signature) > MAX_SIGNATURE:
        raise InvalidSignatureError("Send the Github-Public-Key-Identifier and Github-Public-Key-Signature headers.")
    try:
        der = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignatureError("The signature is not base64.") from None
    public_key = store.key(key_id)
    try:
        public_key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise InvalidSignatureError() from None


def token_hash(token: str) -> str:
    """What GitHub's answer names a token by: the hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_alerts(data: Any, max_alerts: int) -> list[dict[str, Any]]:
    """The alert array: ``[{"token", "type", "url", "source"}]``. 400 for another shape."""
    if not isinstance(data, list) or not data or len(data) > max_alerts:
        raise errors.BadRequest(f"Expected a JSON array of 1 to {max_alerts} matches.", code="invalid_json")
    alerts = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            raise errors.BadRequest("Each match needs a 'token' string.", code="invalid_json")
        kind = item.get("type")
        url = item.get("url")
        alerts.append({"token": item["token"], "type": kind if isinstance(kind, str) else "",
                       "url": url if isinstance(url, str) else None})
    return alerts
