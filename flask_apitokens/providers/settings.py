"""``APITOKENS_OAUTH_PROVIDERS``, validated once into :class:`ProviderConfig` objects."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SETTING = "APITOKENS_OAUTH_PROVIDERS"

#: Provider kinds and the defaults they fill in.
KINDS: dict[str, dict[str, str]] = {
    "github": {"api_base_url": "https://api.github.com/"},
    "gitlab": {"api_base_url": "https://gitlab.com/api/v4/"},
    "google": {"userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
               "tokeninfo_endpoint": "https://oauth2.googleapis.com/tokeninfo"},
    "oidc": {},
}

#: Keys this module reads. ``client_id`` (and ``client_secret``) name this site's
#: OAuth app at the provider: when given, an access token issued to another app is refused.
_OWN_KEYS = frozenset({"kind", "api_base_url", "server_metadata_url", "userinfo_endpoint", "client_id",
                       "client_secret", "tokeninfo_endpoint", "introspection_endpoint"})
#: Other keys of Authlib's client registration (``oauth.register(name, **entry)``), so a
#: host can share one dict with a "Log in with ..." button; this module ignores them.
_CLIENT_KEYS = frozenset({
    "client_kwargs", "authorize_url", "authorize_params",
    "access_token_url", "access_token_params", "request_token_url", "request_token_params",
    "jwks_uri", "compliance_fix", "code_challenge_method", "token_endpoint_auth_method",
    "client_auth_methods", "label",
})
#: Names other routes under ``/authenticate/`` already use.
RESERVED_NAMES = frozenset({"userpass", "ldap"})
# ``via`` on the token table holds at most 32 characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")


@dataclass(frozen=True)
class ProviderConfig:
    """One validated entry of ``APITOKENS_OAUTH_PROVIDERS``."""

    name: str
    kind: str
    api_base_url: str | None = None
    server_metadata_url: str | None = None
    userinfo_endpoint: str | None = None
    #: This site's OAuth app at the provider; None: the token's app is not checked.
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    #: Google's: who a token was issued to (``aud``/``azp``).
    tokeninfo_endpoint: str | None = None
    #: RFC 7662 (an OpenID Connect provider's): who a token was issued to; default: from discovery.
    introspection_endpoint: str | None = None

    @property
    def client(self) -> tuple[str, str] | None:
        """(client_id, client_secret) for HTTP Basic, when both are configured."""
        return (self.client_id, self.client_secret) if self.client_id and self.client_secret else None


def _fail(name: Any, why: str) -> RuntimeError:
    return RuntimeError(f"{SETTING}[{name!r}]: {why}")


def _url(name: str, key: str, value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise _fail(name, f"{key} must be an http(s) URL, got {value!r}")
    return value


def _entry(name: Any, entry: Any) -> ProviderConfig:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _fail(name, "a provider name is 1-32 letters, digits, '_', '.' or '-'")
    if name in RESERVED_NAMES:
        raise _fail(name, f"{name!r} is the name of another login method")
    if not isinstance(entry, Mapping):
        raise _fail(name, f"expected a dict of settings, got {entry!r}")
    unknown = sorted(str(k) for k in entry if k not in _OWN_KEYS and k not in _CLIENT_KEYS)
    if unknown:
        raise _fail(name, f"unknown key {unknown[0]!r} (is it misspelled?)")

    kind = entry.get("kind")
    if kind is None:
        if name in KINDS and name != "oidc":
            kind = name
        elif "server_metadata_url" in entry or "userinfo_endpoint" in entry:
            kind = "oidc"
        else:
            raise _fail(name, f"set 'kind' (one of {', '.join(KINDS)}) or an OpenID Connect "
                              "'server_metadata_url' or 'userinfo_endpoint'")
    if kind not in KINDS:
        raise _fail(name, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    values = {**KINDS[kind], **{k: v for k, v in entry.items() if k in _OWN_KEYS and v is not None}}
    client = _client(name, kind, values)

    if kind in ("github", "gitlab"):
        for key in ("server_metadata_url", "userinfo_endpoint"):
            if key in entry:
                raise _fail(name, f"{key} is for OpenID Connect providers, not {kind}")
        base = _url(name, "api_base_url", values["api_base_url"])
        base = base if base.endswith("/") else base + "/"
        if kind == "gitlab" and not urlsplit(base).path.endswith("/api/v4/"):
            base += "api/v4/"  # the instance's address was given; its API lives under /api/v4/
        return ProviderConfig(name, kind, api_base_url=base, **client)

    metadata_url = values.get("server_metadata_url")
    userinfo = values.get("userinfo_endpoint")
    if "server_metadata_url" in entry and "userinfo_endpoint" not in entry:
        userinfo = None  # discovery replaces the kind's default endpoint
    if metadata_url is None and userinfo is None:
        raise _fail(name, "an OpenID Connect provider needs 'server_metadata_url' or 'userinfo_endpoint'")
    return ProviderConfig(
        name, kind,
        server_metadata_url=_url(name, "server_metadata_url", metadata_url) if metadata_url else None,
        userinfo_endpoint=_url(name, "userinfo_endpoint", userinfo) if userinfo else None,
        **client,
    )


def _client(name: str, kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The client check's settings of one entry; what a check needs must be there."""
    client_id, secret = values.get("client_id"), values.get("client_secret")
    for key in ("tokeninfo_endpoint", "introspection_endpoint"):
        if key in values and kind in ("github", "gitlab"):
            raise _fail(name, f"{key} is for OpenID Connect providers, not {kind}")
    if client_id is None:
        if secret is not None:
            raise _fail(name, "client_secret without client_id")
        return {}
    if not isinstance(client_id, str) or not client_id or not client_id.isprintable() or len(client_id) > 255:
        raise _fail(name, f"client_id must be your OAuth app's client id, got {client_id!r}")
    # GitHub's token check and RFC 7662 introspection authenticate as the app; GitLab's
    # token info and Google's tokeninfo do not.
    needs_secret = kind == "github" or (kind == "oidc" and not values.get("tokeninfo_endpoint"))
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise _fail(name, "client_secret must be text")
    if needs_secret and secret is None:
        raise _fail(name, "client_secret is needed to check which app a token was issued to "
                          "(GitHub's token check and OAuth2 introspection authenticate as your app)")
    config: dict[str, Any] = {"client_id": client_id, "client_secret": secret}
    for key in ("tokeninfo_endpoint", "introspection_endpoint"):
        if values.get(key):
            config[key] = _url(name, key, values[key])
    return config


def load_providers(raw: Any) -> dict[str, ProviderConfig]:
    """Validate ``APITOKENS_OAUTH_PROVIDERS``; a bad entry raises :class:`RuntimeError`
    naming the setting and the entry."""
    if not isinstance(raw, Mapping):
        raise RuntimeError(f"{SETTING}: expected a dict of provider name -> settings, got {raw!r}")
    return {name: _entry(name, entry) for name, entry in raw.items()}
