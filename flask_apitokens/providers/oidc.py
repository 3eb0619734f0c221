"""OpenID Connect providers (Google, Keycloak, Auth0, ...): the UserInfo
endpoint, named in the configuration or found in the provider's discovery
document, returns the token owner's ``sub``, ``email`` and ``email_verified``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from authlib.oidc.core import UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata

from .account import ProviderAccount, account_id, bad_answer, emails, text, token_refused

if TYPE_CHECKING:
    from . import ProviderConfig
    from .http import ProviderHTTP

#: How long a discovery document is reused, in seconds.
METADATA_TTL = 3600


def _is_url(value: Any) -> bool:
    if not text(value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _verified(claim: Any) -> bool:
    # Some providers send the claim as the string "true".
    return claim is True or claim == "true"


class Kind:
    def __init__(self, config: ProviderConfig, http: ProviderHTTP) -> None:
        self.config, self.http = config, http
        self._endpoint: tuple[str, float] | None = None

    def userinfo_endpoint(self) -> str:
        """The configured endpoint, or the one in the (cached) discovery document."""
        if self.config.userinfo_endpoint:
            return self.config.userinfo_endpoint
        cached = self._endpoint
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        name = self.config.name
        reply = self.http.get(name, self.config.server_metadata_url or "", access_token=None)
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise bad_answer(name, "its discovery document with something other than a JSON object"
                             if reply.status == 200 else f"its discovery document with HTTP status {reply.status}")
        metadata = OpenIDProviderMetadata(reply.data)
        endpoint = metadata.get("userinfo_endpoint")
        if not _is_url(endpoint):
            raise bad_answer(name, "a discovery document without a userinfo_endpoint URL")
        self._endpoint = (endpoint, time.monotonic() + METADATA_TTL)  # one assignment: no lock needed
        return endpoint

    def account(self, access_token: str) -> ProviderAccount:
        name = self.config.name
        reply = self.http.get(name, self.userinfo_endpoint(), access_token=access_token)
        if reply.status == 403:  # e.g. insufficient_scope: the token may not read the profile
            raise token_refused(name, "does not let this access token read the account")
        if reply.status != 200:
            raise bad_answer(name, f"the userinfo query with HTTP status {reply.status}")
        if not isinstance(reply.data, dict):
            raise bad_answer(name, "the userinfo query with something other than a JSON object")
        claims = UserInfo(reply.data)
        subject = account_id(claims.get("sub"))
        if subject is None or isinstance(claims.get("sub"), int):
            raise bad_answer(name, "the userinfo query without a 'sub'")
        email = claims.get("email")
        if email is not None and not text(email, allow_empty=True):
            raise bad_answer(name, "the userinfo query with an email that is not text")
        verified = emails([email]) if email and _verified(claims.get("email_verified")) else ()
        username = next(
            (claims[key] for key in ("preferred_username", "nickname") if text(claims.get(key))),
            email.split("@", 1)[0] if email else subject,
        )
        display = claims.get("name")
        return ProviderAccount(subject, username, verified, display if text(display) else None)
