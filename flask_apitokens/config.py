"""Settings: every ``APITOKENS_*`` key with its default and type, read and validated once.

Each key is declared once, in :data:`SETTINGS`: its default, the check of its
type (which also gives the value as the extension uses it), and a ``#:``
comment; the docs' configuration page is built from those comments. Durations
are in seconds; ``None`` for an expiry means "never expires".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from werkzeug.security import generate_password_hash

from . import crypto

DAY = 86400

#: Shortest key taken, given or used to derive one: a key shorter than this
#: ("dev", "change me") is guessable, and a guessed pepper or signing key
#: lets anyone forge user-tokens and test stolen digests offline.
MIN_KEY_LENGTH = 16

_SCOPE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def _fail(key: str, why: str) -> RuntimeError:
    return RuntimeError(f"{key}: {why}")


# -- the types: each checks a value and returns it as the extension uses it ------
def unchecked(key: str, value: Any) -> Any:
    return value  # read by the library it is for (Flask-Limiter's notation, an endpoint name or URL)


def switch(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"expected True or False, got {value!r}")
    return value


def _not_seconds(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0


def seconds(key: str, value: Any) -> int:
    """A whole number >= 0 (a duration; also a few day counts and a size)."""
    if _not_seconds(value):
        raise _fail(key, f"expected a number of seconds >= 0, got {value!r}")
    return int(value)


def seconds_or_none(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if _not_seconds(value):
        raise _fail(key, f"expected a number of seconds >= 0 or None, got {value!r}")
    return int(value)


def timeout(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _fail(key, f"expected a number of seconds > 0, got {value!r}")
    return value


def count_or_none(key: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _fail(key, f"expected a whole number >= 1 or None, got {value!r}")
    return value


def path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail(key, f"expected a path starting with '/', got {value!r}")
    return value.rstrip("/")


def prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or not crypto.PREFIX_PATTERN.fullmatch(value):
        raise _fail(key, "expected up to 16 letters, digits or '_'")
    return value


def http_url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise _fail(key, f"expected an http(s) URL, got {value!r}")
    return value


def issuer(key: str, value: Any) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise _fail(key, f"expected an http(s) URL without query or fragment, got {value!r}")
    return str(value).rstrip("/")


def attribute_or_none(key: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value.isidentifier()):
        raise _fail(key, f"expected an attribute name or None, got {value!r}")
    return value


def hash_method(key: str, value: Any) -> str | None:
    if value is not None:
        try:
            generate_password_hash("check", method=value)
        except (TypeError, ValueError, AttributeError) as exc:
            raise _fail(key, f"not a werkzeug hash method: {value!r}") from exc
    return value


def a_list(key: str, value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _fail(key, f"expected a list, got {value!r}")
    return value


def a_dict(key: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _fail(key, f"expected a dict, got {value!r}")
    return value


def scopes(key: str, value: Any) -> Any:
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str) and _SCOPE_NAME.fullmatch(name) and isinstance(text, str)
        for name, text in value.items()
    ):
        raise _fail(key, "expected a dict of scope name -> description")
    return value


def _key_bytes(value: Any, key: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or len(value) < MIN_KEY_LENGTH:
        raise _fail(key, f"expected a string or bytes of at least {MIN_KEY_LENGTH} characters "
                         "(e.g. secrets.token_hex(32))")
    return value


def key_or_none(key: str, value: Any) -> Any:
    """A key (None: derived from ``SECRET_KEY``, see :func:`load_settings`)."""
    if value is not None:
        _key_bytes(value, key)
    return value


def keys(key: str, value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _fail(key, "expected a list")
    for item in value:
        _key_bytes(item, key)
    return value


class Setting(NamedTuple):
    """One key: its default, and its type as the check of a value (which
    returns the value as used, or raises a RuntimeError naming the key)."""

    default: Any
    check: Callable[[str, Any], Any]


SETTINGS: dict[str, Setting] = {
    #: URL prefix of the JSON routes.
    "APITOKENS_URL_PREFIX": Setting("/api", path),
    #: Prefix of API tokens, so secret scanners recognize them (letters, digits, ``_``; at most 16).
    "APITOKENS_TOKEN_PREFIX": Setting("apt_", prefix),
    #: Prefix of administrator-made API keys; must differ from the token prefix.
    "APITOKENS_KEY_PREFIX": Setting("apk_", prefix),
    #: Prefix of OAuth2 access tokens issued by the authorization server.
    "APITOKENS_OAUTH2_PREFIX": Setting("apo_", prefix),
    #: Prefix of OAuth2 refresh tokens (never accepted on protected views).
    "APITOKENS_OAUTH2_REFRESH_PREFIX": Setting("apr_", prefix),
    #: Key of the stored digests. Default: derived from ``SECRET_KEY``.
    "APITOKENS_PEPPER": Setting(None, key_or_none),
    #: Earlier peppers, still accepted while old tokens are in use (like ``SECRET_KEY_FALLBACKS``).
    "APITOKENS_PEPPER_FALLBACKS": Setting([], keys),
    #: Scopes the host application declares: name -> one-line description.
    #: ``tokens`` (manage one's own tokens) and ``login`` (act as the owner on the site's own
    #: pages, through Flask-Login) are always added.
    "APITOKENS_SCOPES": Setting({}, scopes),
    #: Default expiry of tokens made from a logged-in session (``POST /api/token``).
    "APITOKENS_SESSION_EXPIRES_IN": Setting(30 * DAY, seconds_or_none),
    #: Default expiry of tokens from ``POST /api/authenticate/userpass``.
    "APITOKENS_USERPASS_EXPIRES_IN": Setting(30 * DAY, seconds_or_none),
    #: Default expiry of tokens from ``POST /api/authenticate/ldap``.
    "APITOKENS_LDAP_EXPIRES_IN": Setting(30 * DAY, seconds_or_none),
    #: Default expiry of tokens from ``POST /api/authenticate/<provider>``.
    "APITOKENS_PROVIDER_EXPIRES_IN": Setting(30 * DAY, seconds_or_none),
    #: Default expiry of tokens from the email/password exchange (``POST /api/api_tokens``).
    "APITOKENS_EXCHANGE_EXPIRES_IN": Setting(30 * DAY, seconds_or_none),
    #: Default expiry of tokens made with ``flask apitokens create-token`` and on the token page.
    "APITOKENS_CLI_EXPIRES_IN": Setting(90 * DAY, seconds_or_none),
    #: Lifetime of user-token JWTs (``POST /api/user-token``).
    "APITOKENS_USER_TOKEN_EXPIRES_IN": Setting(DAY, seconds_or_none),
    #: Default expiry of API keys; ``None``: keys never expire unless given an expiry.
    "APITOKENS_KEY_EXPIRES_IN": Setting(None, seconds_or_none),
    #: Longest lifetime any request may give a token (``None``: no cap). API keys are exempt.
    "APITOKENS_MAX_LIFETIME": Setting(365 * DAY, seconds_or_none),
    #: Revoke a token left unused this many days (``None``: never).
    "APITOKENS_REVOKE_UNUSED_AFTER_DAYS": Setting(None, seconds_or_none),
    #: The ``token_expiring`` signal is sent this many days before a token expires.
    "APITOKENS_EXPIRY_WARNING_DAYS": Setting(7, seconds),
    #: Write a token's last-used time and address at most once per this many seconds (0: every request).
    "APITOKENS_LAST_USED_INTERVAL": Setting(300, seconds),
    #: After ``POST /api/tokens/<id>/rotate`` the old token keeps working this many seconds.
    "APITOKENS_ROTATION_GRACE": Setting(600, seconds),
    #: Switch for ``POST /api/token`` (a token from a logged-in session).
    "APITOKENS_SESSION_TOKENS": Setting(True, switch),
    #: Switch for ``POST /api/authenticate/userpass``.
    "APITOKENS_USERPASS": Setting(True, switch),
    #: Switch for the not-recommended email/password exchange ``POST /api/api_tokens`` (off: opt in).
    "APITOKENS_PASSWORD_EXCHANGE": Setting(False, switch),
    #: Switch for user-token JWTs, ``POST/GET /api/user-token`` (off: opt in).
    "APITOKENS_USER_TOKEN": Setting(False, switch),
    #: Key that signs user-token JWTs (HS256). Default: derived from ``SECRET_KEY``.
    "APITOKENS_USER_TOKEN_KEY": Setting(None, key_or_none),
    #: Earlier user-token keys, still accepted while a key is rotated.
    "APITOKENS_USER_TOKEN_KEY_FALLBACKS": Setting([], keys),
    #: Origins besides the application's own that may call ``POST /api/token`` with a cookie.
    "APITOKENS_TRUSTED_ORIGINS": Setting([], a_list),
    #: Largest request body the extension's routes read, in bytes.
    "APITOKENS_MAX_BODY_SIZE": Setting(64 * 1024, seconds),
    #: Seconds allowed for connecting to the LDAP directory and for each operation.
    "APITOKENS_LDAP_TIMEOUT": Setting(5, timeout),
    #: Map of LDAP group DN -> list of scopes granted to its members.
    "APITOKENS_LDAP_GROUP_SCOPES": Setting({}, a_dict),
    #: LDAP group DNs whose members are administrators.
    "APITOKENS_LDAP_ADMIN_GROUPS": Setting([], a_list),
    #: OAuth providers accepted by ``POST /api/authenticate/<provider>``: name -> settings.
    "APITOKENS_OAUTH_PROVIDERS": Setting({}, a_dict),
    #: Seconds allowed for each call to a provider's API.
    "APITOKENS_PROVIDER_TIMEOUT": Setting(5, timeout),
    #: Link a provider identity to an existing user with the same verified email.
    "APITOKENS_PROVIDER_LINK_BY_EMAIL": Setting(False, switch),
    #: Switch for the OAuth2 authorization server (``/oauth/...``) (off: opt in).
    "APITOKENS_OAUTH2_SERVER": Setting(False, switch),
    #: Lifetime of OAuth2 access tokens.
    "APITOKENS_OAUTH2_ACCESS_TOKEN_EXPIRES_IN": Setting(3600, seconds_or_none),
    #: Lifetime of OAuth2 refresh tokens.
    "APITOKENS_OAUTH2_REFRESH_TOKEN_EXPIRES_IN": Setting(30 * DAY, seconds),
    #: Lifetime of OAuth2 authorization codes.
    "APITOKENS_OAUTH2_CODE_EXPIRES_IN": Setting(60, seconds),
    #: The OAuth2 server's issuer (RFC 8414), e.g. ``"https://example.com"``: the
    #: metadata document's ``issuer`` and endpoints, and introspection's ``iss``.
    #: ``None``: taken from the request's ``Host``, which a client chooses; set it
    #: in production, together with Flask's ``TRUSTED_HOSTS``.
    "APITOKENS_OAUTH2_ISSUER": Setting(None, issuer),
    #: Path of the login page the OAuth2 consent and the token page send people to
    #: (an endpoint name or a URL); default: Flask-Login's ``login_view``.
    "APITOKENS_LOGIN_VIEW": Setting(None, unchecked),
    #: Path of the token page.
    "APITOKENS_UI_URL_PREFIX": Setting("/tokens", path),
    #: Switch for the token page.
    "APITOKENS_UI": Setting(True, switch),
    #: Expiry choices offered on the token page, in days.
    "APITOKENS_UI_EXPIRY_CHOICES": Setting([7, 30, 90, 365], a_list),
    #: werkzeug method of the password hashes the host makes (``generate_password_hash``'s
    #: ``method``). A login for an unknown user is checked against a dummy hash of this
    #: method, so it costs what a known user's costs. ``None``: werkzeug's default.
    "APITOKENS_PASSWORD_HASH_METHOD": Setting(None, hash_method),
    #: Limit per client address on the routes that take a credential (Flask-Limiter notation).
    "APITOKENS_RATE_LIMIT": Setting("30/minute", unchecked),
    #: Limit per account name on the routes that take a credential.
    "APITOKENS_ACCOUNT_RATE_LIMIT": Setting("10/minute", unchecked),
    #: Most live personal tokens (tokens, user-tokens, OAuth2 access tokens) one person may
    #: have (``None``: no cap). Issuing past it answers ``409 too_many_tokens``; a rotation
    #: (of a token, or of an OAuth2 refresh token) replaces one and is always allowed.
    "APITOKENS_MAX_TOKENS_PER_USER": Setting(None, count_or_none),
    #: Revoke every credential of a person when the password column of the user model
    #: changes (committed with that change). See :doc:`leaks`.
    "APITOKENS_REVOKE_ON_PASSWORD_CHANGE": Setting(False, switch),
    #: The user model's password attribute watched by ``APITOKENS_REVOKE_ON_PASSWORD_CHANGE``
    #: (default: its ``password_hash`` or ``password`` column).
    "APITOKENS_PASSWORD_ATTRIBUTE": Setting(None, attribute_or_none),
    #: Switch for ``POST /api/secret-scanning``, GitHub's secret scanning partner endpoint (off by default).
    "APITOKENS_SECRET_SCANNING": Setting(False, switch),
    #: Where GitHub publishes the keys that sign secret scanning alerts.
    "APITOKENS_SECRET_SCANNING_KEYS_URL": Setting("https://api.github.com/meta/public_keys/secret_scanning", http_url),
    #: Seconds allowed for fetching the secret scanning keys.
    "APITOKENS_SECRET_SCANNING_TIMEOUT": Setting(5, timeout),
}

#: Each key's default.
DEFAULTS: dict[str, Any] = {key: setting.default for key, setting in SETTINGS.items()}

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


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read every ``APITOKENS_*`` key from ``config`` (``overrides`` win), check
    it and derive the keys. Raises :class:`RuntimeError` naming the bad key."""
    unknown = sorted(k for k in config if k.startswith("APITOKENS_") and k not in SETTINGS)
    if unknown:
        raise _fail(unknown[0], "unknown setting (is it misspelled?)")
    values: dict[str, Any] = {}
    for key, setting in SETTINGS.items():
        value = overrides[key] if overrides and key in overrides else config.get(key, setting.default)
        values[key] = setting.check(key, value)

    prefixes: dict[str, str] = {}
    for key, setting in SETTINGS.items():
        if setting.check is prefix:
            if values[key] in prefixes:
                raise _fail(key, f"must differ from {prefixes[values[key]]}")
            prefixes[values[key]] = key

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
        found = [_key_bytes(item, key) for item in values[key]]
        # Follow Flask's SECRET_KEY_FALLBACKS when the key itself is derived.
        if values[default_source] is None:
            old_keys = config.get("SECRET_KEY_FALLBACKS") or ()
            found += [crypto.derive_key(_key_bytes(old, f"SECRET_KEY_FALLBACKS (which {key} is derived from)"),
                                        purpose) for old in old_keys]
        return tuple(found)

    return Settings(
        values=values,
        pepper=derived("APITOKENS_PEPPER", "pepper"),
        pepper_fallbacks=fallbacks("APITOKENS_PEPPER_FALLBACKS", "pepper", "APITOKENS_PEPPER"),
        user_token_key=derived("APITOKENS_USER_TOKEN_KEY", "user-token"),
        user_token_key_fallbacks=fallbacks(
            "APITOKENS_USER_TOKEN_KEY_FALLBACKS", "user-token", "APITOKENS_USER_TOKEN_KEY"
        ),
        scopes={**BUILTIN_SCOPES, **values["APITOKENS_SCOPES"]},
    )
