"""The ways of issuing a token, one module each, in one explicit list.

Each module owns its input and output shape, its route(s) (its ``register``
adds them to the JSON blueprint) and their OpenAPI description (its
``OPENAPI``). None writes to the token table itself: they call
:class:`~flask_apitokens.service.TokenService`. The JSON blueprint
(:mod:`flask_apitokens.views.api`) and the OpenAPI document
(:mod:`flask_apitokens.openapi_document`) loop over :data:`ISSUING_METHODS`.

A new way of issuing: a module here with ``register`` and ``OPENAPI``, a
settings switch in :mod:`flask_apitokens.config`, and a line below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from . import exchange, ldap, providers, session, user_token, userpass

if TYPE_CHECKING:
    from flask import Blueprint

    from ..state import State


class IssuingMethod(NamedTuple):
    #: A label for the reader (and a traceback's repr); the code looks none up by it.
    name: str
    #: Whether the application serves it (its settings switch).
    enabled: Callable[[State], bool]
    #: Adds its route(s) to the JSON blueprint.
    register: Callable[[Blueprint, State], None]
    #: Its routes for the OpenAPI document, paths relative to the API prefix.
    openapi: Mapping[str, Any]


def _setting(key: str) -> Callable[[State], bool]:
    return lambda state: bool(state.settings[key])


ISSUING_METHODS: tuple[IssuingMethod, ...] = (
    IssuingMethod("session", _setting("SESSION_TOKENS"), session.register, session.OPENAPI),
    IssuingMethod("userpass", _setting("USERPASS"), userpass.register, userpass.OPENAPI),
    IssuingMethod("exchange", _setting("PASSWORD_EXCHANGE"), exchange.register, exchange.OPENAPI),
    # On when the host configures flask-ldap3-login's LDAP_HOST.
    IssuingMethod("ldap", lambda state: bool(state.app.config.get("LDAP_HOST")), ldap.register, ldap.OPENAPI),
    # The switch is the routes' only: the token service checks a JWT presented as a bearer
    # credential either way (switching it off stops new JWTs, it does not strand the ones already out).
    IssuingMethod("user_token", _setting("USER_TOKEN"), user_token.register, user_token.OPENAPI),
    IssuingMethod("providers", _setting("OAUTH_PROVIDERS"), providers.register, providers.OPENAPI),
)
