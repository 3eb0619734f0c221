"""The OAuth2 authorization server (``/oauth/...``), built on Authlib.

:func:`register` is called by ``APITokens.init_app``: it always declares the
tables (so the schema does not depend on the switch), and adds the routes when
``APITOKENS_OAUTH2_SERVER`` is true.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .models import OAuth2Models, build_oauth2_models


def build_models(state: Any) -> OAuth2Models:
    from . import cli  # noqa: F401  (attaches the client commands to ``flask apitokens``)

    return build_oauth2_models(state.db, state.models)


def register(app: Flask, state: Any) -> None:
    """Add the OAuth2 routes to ``app``."""
    from .views import create_blueprint

    app.register_blueprint(create_blueprint(app, state))
