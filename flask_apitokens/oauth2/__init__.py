"""The OAuth2 authorization server (``/oauth/...``), built on Authlib.

:func:`register` is called by ``APITokens.init_app``: it always declares the
tables (so the schema does not depend on the switch), and adds the routes when
``APITOKENS_OAUTH2_SERVER`` is true.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from .. import signals
from ..revocation import revoke_apart
from ..service import OAUTH2
from .models import OAuth2Models, build_oauth2_models

#: Revocations that must not widen to the family: a client revoking only its
#: access token (RFC 7009), and the family revocation itself.
NARROW_REASONS = frozenset(("oauth2_revoke", "oauth2_family"))


def build_models(state: Any) -> OAuth2Models:
    from . import cli  # noqa: F401  (attaches the client commands to ``flask apitokens``)

    models = build_oauth2_models(state.db, state.models)
    signals.token_revoked.connect(_family_revoker(state), sender=state.app, weak=False)
    return models


def _family_revoker(state: Any) -> Any:
    """When a person or an administrator revokes an app's access token (token
    page, "log out everywhere", CLI), revoke the whole authorization, so that the
    app cannot quietly refresh its way back in."""

    def revoke_families(sender: Any, *, token_ids: list[str], reason: str, **_: Any) -> None:
        if reason in NARROW_REASONS or not token_ids:
            return
        T = state.models.Token
        # Read and written apart from the host's session: a revocation can come
        # from the token check, with the request's own work pending there.
        with Session(state.db.engine) as session:
            families = list(session.execute(
                sa.select(T.parent_id).distinct()
                .where(T.id.in_(token_ids), T.kind == OAUTH2, T.parent_id.is_not(None))
            ).scalars())
        if not families:
            return
        revoked = revoke_apart(state.db.engine, state.models, families, [], "oauth2_family")
        if revoked:
            signals.token_revoked.send(state.app, token_ids=revoked, user_id=None, reason="oauth2_family")

    return revoke_families


def register(app: Flask, state: Any) -> None:
    """Add the OAuth2 routes to ``app``."""
    from .views import create_blueprint

    app.register_blueprint(create_blueprint(app, state))
