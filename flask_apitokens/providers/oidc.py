"""OpenID Connect providers (Google, Keycloak, Auth0, ...): the UserInfo
endpoint, named in the configuration or found in the provider's discovery
document, returns the token owner's ``sub``, ``email`` and ``email_verified``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from authlib.oidc.core import UserInfo
from authlib.oidc.discovery import OpenIDProviderMetadata

from .account import ProviderAccount, account_id, bad_answer, emails, other_app, text, token_refused

if TYPE_CHECKING:
    from .http import ProviderHTTP
    from .settings import ProviderConfig

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
        self._metadata: tuple[dict[str, Any], float] | None = None

    def _discovered(self, key: str) -> str:
        """``key`` of the (cached) discovery document, an http(s) URL."""
        cached = self._metadata
        name = self.config.name
        if cached is None or cached[1] <= time.monotonic():
            reply = self.http.get(name, self.config.server_metadata_url or "", access_token=None)
            if reply.status != 200 or not isinstance(reply.data, dict):
                raise bad_answer(name, "its discovery document with something other than a JSON object"
                                 if reply.status == 200 else f"its discovery document with HTTP status {reply.status}")
            cached = (dict(OpenIDProviderMetadata(reply.data)), time.monotonic() + METADATA_TTL)
            self._metadata = cached  # one assignment: no lock needed
        endpoint = cached[0].get(key)
        if not _is_url(endpoint):
            raise bad_answer(name, f"a discovery document without a {key} URL")
        return str(endpoint)

    def userinfo_endpoint(self) -> str:
        """The configured endpoint, or the one in the (cached) discovery document."""
        return self.config.userinfo_endpoint or self._discovered("userinfo_endpoint")

    def check_client(self, access_token: str) -> None:
        """Whether the token was issued to this site's app: Google's tokeninfo
        (``aud``/``azp``), else RFC 7662 introspection (``client_id``/``aud``),
        asked as this site's client."""
        name, config = self.config.name, self.config
        if config.tokeninfo_endpoint:
            reply = self.http.post_as_client(name, config.tokeninfo_endpoint, None, form={"access_token": access_token})
            if reply.status == 400:  # Google's answer for a token it does not know
                raise token_refused(name)
            audiences = [reply.data.get("aud"), reply.data.get("azp")] if isinstance(reply.data, dict) else []
        else:
            endpoint = config.introspection_endpoint or self._discovered("introspection_endpoint")
            reply = self.http.post_as_client(name, endpoint, config.client,
                                             form={"token": access_token, "token_type_hint": "access_token"})
            if reply.status == 200 and isinstance(reply.data, dict) and reply.data.get("active") is not True:
                raise token_refused(name)
            data = reply.data if isinstance(reply.data, dict) else {}
            aud = data.get("aud")
            audiences = [data.get("client_id"), *(aud if isinstance(aud, list) else [aud])]
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise bad_answer(name, f"the token check with HTTP status {reply.status}")
        if config.client_id not in audiences:
            raise other_app(name)

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
