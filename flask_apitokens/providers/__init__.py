"""OAuth providers that vouch for an access token: who owns it, and which of
the owner's email addresses are verified.

``APITOKENS_OAUTH_PROVIDERS`` names them; :func:`load_providers` (in
:mod:`.settings`) validates that dict once into :class:`ProviderConfig`
objects, and :class:`ProviderRegistry` asks the right kind module
(:mod:`.github`, :mod:`.gitlab`, :mod:`.oidc`) about a token. Every call
goes through :mod:`.http`, which bounds time and size and turns the
provider's failures into 401/502/504 errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import github, gitlab, oidc
from .account import ProviderAccount
from .http import ProviderHTTP
from .settings import KINDS, RESERVED_NAMES, ProviderConfig, load_providers

__all__ = ["KINDS", "RESERVED_NAMES", "ProviderAccount", "ProviderConfig", "ProviderRegistry", "load_providers"]


class ProviderRegistry:
    """The configured providers of one application."""

    def __init__(self, providers: Mapping[str, ProviderConfig], *, timeout: float) -> None:
        self.providers = dict(providers)
        self.http = ProviderHTTP(timeout=timeout)
        self._kinds: dict[str, Any] = {}

    def get(self, name: str) -> ProviderConfig | None:
        return self.providers.get(name)

    def _kind(self, config: ProviderConfig) -> Any:
        # One instance per provider: an OpenID Connect one keeps its discovery document.
        kind = self._kinds.get(config.name)
        if kind is None:
            module = {"github": github, "gitlab": gitlab}.get(config.kind, oidc)
            kind = self._kinds[config.name] = module.Kind(config, self.http)
        return kind

    def account(self, config: ProviderConfig, access_token: str) -> ProviderAccount:
        """Who owns ``access_token`` at ``config``'s provider, and their verified emails.
        Raises 401 (token refused), 502 (provider down or answering nonsense) or 504."""
        kind = self._kind(config)
        if config.client_id:
            kind.check_client(access_token)  # 401 token_not_for_this_app: another app's token
        return kind.account(access_token)
