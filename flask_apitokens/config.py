"""Settings: every ``APITOKENS_*`` key with its default, read and validated once.

Each key is declared once, in :data:`DEFAULTS`, with a ``#:`` comment; the docs'
configuration page is built from those comments. Durations are in seconds;
``None`` for an expiry means "never expires".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from werkzeug.security import generate_password_hash

from . import crypto

DAY = 86400

DEFAULTS: dict[str, Any] = {
    #: URL prefix of the JSON routes.
    "APITOKENS_URL_PREFIX": "/api",
    #: Prefix of API tokens, so secret scanners recognize them (letters, digits, ``_``; at most 16).
    "APITOKENS_TOKEN_PREFIX": "apt_",
    #: Prefix of administrator-made API keys; must differ from the token prefix.
    "APITOKENS_KEY_PREFIX": "apk_",
    #: Prefix of OAuth2 access tokens issued by the authorization server.
    "APITOKENS_OAUTH2_PREFIX": "apo_",
    #: Prefix of OAuth2 refresh tokens (never accepted on protected views).
    "APITOKENS_OAUTH2_REFRESH_PREFIX": "apr_",
    #: Key of the stored digests. Default: derived from ``SECRET_KEY``.
    "APITOKENS_PEPPER": None,
    #: Earlier peppers, still accepted while old tokens are in use (like ``SECRET_KEY_FALLBACKS``).
    "APITOKENS_PEPPER_FALLBACKS": [],
    #: Scopes the host application declares: name -> one-line description.
    #: ``tokens`` (manage one's own tokens) and ``login`` (act as the owner on the site's own
    #: pages, through Flask-Login) are always added.
    "APITOKENS_SCOPES": {},
    #: Default expiry of tokens made from a logged-in session (``POST /api/token``).
    "APITOKENS_SESSION_EXPIRES_IN": 30 * DAY,
    #: Default expiry of tokens from ``POST /api/authenticate/userpass``.
    "APITOKENS_USERPASS_EXPIRES_IN": 30 * DAY,
    #: Default expiry of tokens from ``POST /api/authenticate/ldap``.
    "APITOKENS_LDAP_EXPIRES_IN": 30 * DAY,
    #: Default expiry of tokens from ``POST /api/authenticate/<provider>``.
    "APITOKENS_PROVIDER_EXPIRES_IN": 30 * DAY,
    #: Default expiry of tokens from the email/password exchange (``POST /api/api_tokens``).
    "APITOKENS_EXCHANGE_EXPIRES_IN": 30 * DAY,
    #: Default expiry of tokens made with ``flask apitokens create-token`` and on the token page.
    "APITOKENS_CLI_EXPIRES_IN": 90 * DAY,
    #: Lifetime of user-token JWTs (``POST /api/user-token``).
    "APITOKENS_USER_TOKEN_EXPIRES_IN": DAY,
    #: Default expiry of API keys; ``None``: keys never expire unless given an expiry.
    "APITOKENS_KEY_EXPIRES_IN": None,
    #: Longest lifetime any request may give a token (``None``: no cap). API keys are exempt.
    "APITOKENS_MAX_LIFETIME": 365 * DAY,
    #: Revoke a token left unused this many days (``None``: never).
    "APITOKENS_REVOKE_UNUSED_AFTER_DAYS": None,
    #: The ``token_expiring`` signal is sent this many days before a token expires.
    "APITOKENS_EXPIRY_WARNING_DAYS": 7,
    #: Write a token's last-used time and address at most once per this many seconds (0: every request).
    "APITOKENS_LAST_USED_INTERVAL": 300,
    #: After ``POST /api/tokens/<id>/rotate`` the old token keeps working this many seconds.
    "APITOKENS_ROTATION_GRACE": 600,
    #: Switch for ``POST /api/token`` (a token from a logged-in session).
    "APITOKENS_SESSION_TOKENS": True,
    #: Switch for ``POST /api/authenticate/userpass``.
    "APITOKENS_USERPASS": True,
    #: Switch for the not-recommended email/password exchange ``POST /api/api_tokens`` (off: opt in).
    "APITOKENS_PASSWORD_EXCHANGE": False,
    #: Switch for user-token JWTs, ``POST/GET /api/user-token`` (off: opt in).
    "APITOKENS_USER_TOKEN": False,
    #: Key that signs user-token JWTs (HS256). Default: derived from ``SECRET_KEY``.
    "APITOKENS_USER_TOKEN_KEY": None,
    #: Earlier user-token keys, still accepted while a key is rotated.
    "APITOKENS_USER_TOKEN_KEY_FALLBACKS": [],
    #: Origins besides the application's own that may call ``POST /api/token`` with a cookie.
    "APITOKENS_TRUSTED_ORIGINS": [],
    #: Largest request body the extension's routes read, in bytes.
    "APITOKENS_MAX_BODY_SIZE": 64 * 1024,
    #: Seconds allowed for connecting to the LDAP directory and for each operation.
    "APITOKENS_LDAP_TIMEOUT": 5,
    #: Map of LDAP group DN -> list of scopes granted to its members.
    "APITOKENS_LDAP_GROUP_SCOPES": {},
    #: LDAP group DNs whose members are administrators.
    "APITOKENS_LDAP_ADMIN_GROUPS": [],
    #: OAuth providers accepted by ``POST /api/authenticate/<provider>``: name -> settings.
    "APITOKENS_OAUTH_PROVIDERS": {},
    #: Seconds allowed for each call to a provider's API.
    "APITOKENS_PROVIDER_TIMEOUT": 5,
    #: Link a provider identity to an existing user with the same verified email.
    "APITOKENS_PROVIDER_LINK_BY_EMAIL": False,
    #: Switch for the OAuth2 authorization server (``/oauth/...``) (off: opt in).
    "APITOKENS_OAUTH2_SERVER": False,
    #: Lifetime of OAuth2 access tokens.
    "APITOKENS_OAUTH2_ACCESS_TOKEN_EXPIRES_IN": 3600,
    #: Lifetime of OAuth2 refresh tokens.
    "APITOKENS_OAUTH2_REFRESH_TOKEN_EXPIRES_IN": 30 * DAY,
    #: Lifetime of OAuth2 authorization codes.
    "APITOKENS_OAUTH2_CODE_EXPIRES_IN": 60,
    #: The OAuth2 server's issuer (RFC 8414), e.g. ``"https://example.com"``: the
    #: metadata document's ``issuer`` and endpoints, and introspection's ``iss``.
    #: ``None``: taken from the request's ``Host``, which a client chooses; set it
    #: in production, together with Flask's ``TRUSTED_HOSTS``.
    "APITOKENS_OAUTH2_ISSUER": None,
    #: Path of the login page the OAuth2 consent and the token page send people to
    #: (an endpoint name or a URL); default: Flask-Login's ``login_view``.
    "APITOKENS_LOGIN_VIEW": None,
    #: Path of the token page.
    "APITOKENS_UI_URL_PREFIX": "/tokens",
    #: Switch for the token page.
    "APITOKENS_UI": True,
    #: Expiry choices offered on the token page, in days.
    "APITOKENS_UI_EXPIRY_CHOICES": [7, 30, 90, 365],
    #: werkzeug method of the password hashes the host makes (``generate_password_hash``'s
    #: ``method``). A login for an unknown user is checked against a dummy hash of this
    #: method, so it costs what a known user's costs. ``None``: werkzeug's default.
    "APITOKENS_PASSWORD_HASH_METHOD": None,
    #: Limit per client address on the routes that take a credential (Flask-Limiter notation).
    "APITOKENS_RATE_LIMIT": "30/minute",
    #: Limit per account name on the routes that take a credential.
    "APITOKENS_ACCOUNT_RATE_LIMIT": "10/minute",
    #: Most live personal tokens (tokens, user-tokens, OAuth2 access tokens) one person may
    #: have (``None``: no cap). Issuing past it answers ``409 too_many_tokens``; a rotation
    #: (of a token, or of an OAuth2 refresh token) replaces one and is always allowed.
    "APITOKENS_MAX_TOKENS_PER_USER": None,
    #: Revoke every credential of a person when the password column of the user model
    #: changes (committed with that change). See :doc:`leaks`.
    "APITOKENS_REVOKE_ON_PASSWORD_CHANGE": False,
    #: The user model's password attribute watched by ``APITOKENS_REVOKE_ON_PASSWORD_CHANGE``
    #: (default: its ``password_hash`` or ``password`` column).
    "APITOKENS_PASSWORD_ATTRIBUTE": None,
    #: Switch for ``POST /api/secret-scanning``, GitHub's secret scanning partner endpoint (off by default).
    "APITOKENS_SECRET_SCANNING": False,
    #: Where GitHub publishes the keys that sign secret scanning alerts.
    "APITOKENS_SECRET_SCANNING_KEYS_URL": "https://api.github.com/meta/public_keys/secret_scanning",
    #: Seconds allowed for fetching the secret scanning keys.
    "APITOKENS_SECRET_SCANNING_TIMEOUT": 5,
}

#: Scopes every application has. ``login`` is what lets Flask-Login's request loader
#: take a credential for its owner (``@login_required`` views, ``current_user``).
LOGIN_SCOPE = "login"
BUILTIN_SCOPES = {
    "tokens": "List, rotate and revoke the owner's tokens.",
    LOGIN_SCOPE: "Act as its owner on the site's own pages.",
}

METHOD_EXPIRY_KEYS = {
    "session": "APITOKENS_SESSION_EXPIRES_IN",
    "userpass": "APITOKENS_USERPASS_EXPIRES_IN",
    "ldap": "APITOKENS_LDAP_EXPIRES_IN",
    "provider": "APITOKENS_PROVIDER_EXPIRES_IN",
    "exchange": "APITOKENS_EXCHANGE_EXPIRES_IN",
    "cli": "APITOKENS_CLI_EXPIRES_IN",
    "user-token": "APITOKENS_USER_TOKEN_EXPIRES_IN",
    "key": "APITOKENS_KEY_EXPIRES_IN",
    "oauth2": "APITOKENS_OAUTH2_ACCESS_TOKEN_EXPIRES_IN",
}

_SCOPE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated settings of one application (``state.settings``)."""

    values: Mapping[str, Any]
    pepper: bytes
    pepper_fallbacks: tuple[bytes, ...]
    user_token_key: bytes
    user_token_key_fallbacks: tuple[bytes, ...]
    scopes: Mapping[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.values["APITOKENS_" + key]

    def expiry_for(self, method: str) -> int | None:
        """Default expiry in seconds of tokens issued by ``method`` (None: never)."""
        return self.values[METHOD_EXPIRY_KEYS.get(method, "APITOKENS_CLI_EXPIRES_IN")]


def _fail(key: str, why: str) -> RuntimeError:
    return RuntimeError(f"{key}: {why}")


def _duration(values: dict[str, Any], key: str, *, allow_none: bool) -> None:
    value = values[key]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(key, f"expected a number of seconds >= 0{' or None' if allow_none else ''}, got {value!r}")
    values[key] = int(value)


#: Shortest key taken, given or used to derive one: a key shorter than this
#: ("dev", "change me") is guessable, and a guessed pepper or signing key
#: lets anyone forge user-tokens and test stolen digests offline.
MIN_KEY_LENGTH = 16


def _key_bytes(value: Any, key: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or len(value) < MIN_KEY_LENGTH:
        raise _fail(key, f"expected a string or bytes of at least {MIN_KEY_LENGTH} characters "
                         "(e.g. secrets.token_hex(32))")
    return value


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read every ``APITOKENS_*`` key from ``config`` (``overrides`` win), validate
    it and derive the keys. Raises :class:`RuntimeError` naming the bad key."""
    values: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        if overrides and key in overrides:
            values[key] = overrides[key]
        else:
            values[key] = config.get(key, default)
    unknown = sorted(k for k in config if k.startswith("APITOKENS_") and k not in DEFAULTS)
    if unknown:
        raise _fail(unknown[0], "unknown setting (is it misspelled?)")

    for key in METHOD_EXPIRY_KEYS.values():
        _duration(values, key, allow_none=True)
    for key in ("APITOKENS_MAX_LIFETIME", "APITOKENS_REVOKE_UNUSED_AFTER_DAYS"):
        _duration(values, key, allow_none=True)
    for key in (
        "APITOKENS_EXPIRY_WARNING_DAYS",
        "APITOKENS_LAST_USED_INTERVAL",
        "APITOKENS_ROTATION_GRACE",
        "APITOKENS_MAX_BODY_SIZE",
        "APITOKENS_OAUTH2_REFRESH_TOKEN_EXPIRES_IN",
        "APITOKENS_OAUTH2_CODE_EXPIRES_IN",
    ):
        _duration(values, key, allow_none=False)
    cap = values["APITOKENS_MAX_TOKENS_PER_USER"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise _fail("APITOKENS_MAX_TOKENS_PER_USER", f"expected a whole number >= 1 or None, got {cap!r}")
    keys_url = values["APITOKENS_SECRET_SCANNING_KEYS_URL"]
    if not isinstance(keys_url, str) or not keys_url.startswith(("https://", "http://")):
        raise _fail("APITOKENS_SECRET_SCANNING_KEYS_URL", f"expected an http(s) URL, got {keys_url!r}")
    attribute = values["APITOKENS_PASSWORD_ATTRIBUTE"]
    if attribute is not None and not (isinstance(attribute, str) and attribute.isidentifier()):
        raise _fail("APITOKENS_PASSWORD_ATTRIBUTE", f"expected an attribute name or None, got {attribute!r}")
    for key in ("APITOKENS_LDAP_TIMEOUT", "APITOKENS_PROVIDER_TIMEOUT", "APITOKENS_SECRET_SCANNING_TIMEOUT"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _fail(key, f"expected a number of seconds > 0, got {value!r}")

    for key in ("APITOKENS_URL_PREFIX", "APITOKENS_UI_URL_PREFIX"):
        value = values[key]
        if not isinstance(value, str) or not value.startswith("/"):
            raise _fail(key, f"expected a path starting with '/', got {value!r}")
        values[key] = value.rstrip("/")

    prefixes: dict[str, str] = {}
    for key in ("APITOKENS_TOKEN_PREFIX", "APITOKENS_KEY_PREFIX", "APITOKENS_OAUTH2_PREFIX",
                "APITOKENS_OAUTH2_REFRESH_PREFIX"):
        value = values[key]
        if not isinstance(value, str) or not crypto.PREFIX_PATTERN.fullmatch(value):
            raise _fail(key, "expected up to 16 letters, digits or '_'")
        if value in prefixes:
            raise _fail(key, f"must differ from {prefixes[value]}")
        prefixes[value] = key

    for key, value in values.items():
        if key in ("APITOKENS_SESSION_TOKENS", "APITOKENS_USERPASS", "APITOKENS_PASSWORD_EXCHANGE",
                   "APITOKENS_USER_TOKEN", "APITOKENS_OAUTH2_SERVER", "APITOKENS_UI",
                   "APITOKENS_PROVIDER_LINK_BY_EMAIL", "APITOKENS_REVOKE_ON_PASSWORD_CHANGE",
                   "APITOKENS_SECRET_SCANNING") and not isinstance(value, bool):
            raise _fail(key, f"expected True or False, got {value!r}")

    declared = values["APITOKENS_SCOPES"]
    if not isinstance(declared, Mapping) or not all(
        isinstance(name, str) and _SCOPE_NAME.fullmatch(name) and isinstance(text, str)
        for name, text in declared.items()
    ):
        raise _fail("APITOKENS_SCOPES", "expected a dict of scope name -> description")
    scopes = {**BUILTIN_SCOPES, **declared}

    for key in ("APITOKENS_TRUSTED_ORIGINS", "APITOKENS_LDAP_ADMIN_GROUPS", "APITOKENS_UI_EXPIRY_CHOICES"):
        if not isinstance(values[key], (list, tuple)):
            raise _fail(key, f"expected a list, got {values[key]!r}")
    for key in ("APITOKENS_OAUTH_PROVIDERS", "APITOKENS_LDAP_GROUP_SCOPES"):
        if not isinstance(values[key], Mapping):
            raise _fail(key, f"expected a dict, got {values[key]!r}")

    issuer = values["APITOKENS_OAUTH2_ISSUER"]
    if issuer is not None:
        parts = urlsplit(issuer) if isinstance(issuer, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment:
            raise _fail("APITOKENS_OAUTH2_ISSUER", f"expected an http(s) URL without query or fragment, got {issuer!r}")
        values["APITOKENS_OAUTH2_ISSUER"] = issuer.rstrip("/")
    method = values["APITOKENS_PASSWORD_HASH_METHOD"]
    if method is not None:
        try:
            generate_password_hash("check", method=method)
        except (TypeError, ValueError, AttributeError) as exc:
            raise _fail("APITOKENS_PASSWORD_HASH_METHOD", f"not a werkzeug hash method: {method!r}") from exc

    secret_key = config.get("SECRET_KEY")

    def derived(key: str, purpose: str) -> bytes:
        if values[key] is not None:
            return _key_bytes(values[key], key)
        if not secret_key:
            raise _fail(key, "set it, or set SECRET_KEY to derive it from")
        # One rule for strength, given or derived: the derived key is as weak as SECRET_KEY.
        _key_bytes(secret_key, f"SECRET_KEY (which {key} is derived from)")
        return crypto.derive_key(secret_key, purpose)

    def fallbacks(key: str, purpose: str, default_source: str) -> tuple[bytes, ...]:
        given = values[key]
        if not isinstance(given, (list, tuple)):
            raise _fail(key, "expected a list")
        keys = [_key_bytes(item, key) for item in given]
        # Follow Flask's SECRET_KEY_FALLBACKS when the key itself is derived.
        if values[default_source] is None:
            old_keys = config.get("SECRET_KEY_FALLBACKS") or ()
            keys += [crypto.derive_key(_key_bytes(old, f"SECRET_KEY_FALLBACKS (which {key} is derived from)"),
                                       purpose) for old in old_keys]
        return tuple(keys)

    return Settings(
        values=values,
        pepper=derived("APITOKENS_PEPPER", "pepper"),
        pepper_fallbacks=fallbacks("APITOKENS_PEPPER_FALLBACKS", "pepper", "APITOKENS_PEPPER"),
        user_token_key=derived("APITOKENS_USER_TOKEN_KEY", "user-token"),
        user_token_key_fallbacks=fallbacks(
            "APITOKENS_USER_TOKEN_KEY_FALLBACKS", "user-token", "APITOKENS_USER_TOKEN_KEY"
        ),
        scopes=scopes,
    )
