"""What the extension keeps for one application, and the one way to reach it.

:class:`State` lives in ``app.extensions["apitokens"]`` (as Flask-SQLAlchemy
keeps its own); every module reaches it through :func:`state` (or
:func:`state_if_set_up` where no application may be there). This module sits at
the bottom of the Flask layer: it imports only the core, so every other
module, however high, may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, current_app, has_app_context

from .config import Settings
from .models import Models
from .service import TokenService
from .users import UserStore

_KEY = "apitokens"


@dataclass
class State:
    """Everything the extension keeps for one application, in
    ``app.extensions["apitokens"]``."""

    app: Flask
    db: Any
    models: Models
    users: UserStore
    settings: Settings
    service: TokenService
    #: The OAuth2 server's tables (clients, codes, grants).
    oauth2_models: Any = None
    #: The extension's own Flask-Limiter ``Limiter`` (see :mod:`flask_apitokens.ratelimit`).
    limiter: Any = None
    #: (user model, password attribute) watched by APITOKENS_REVOKE_ON_PASSWORD_CHANGE.
    password_watch: tuple[Any, str] | None = None
    #: GitHub's secret scanning keys, fetched on demand (see :mod:`flask_apitokens.secret_scanning`).
    scanning_keys: Any = None


def state(app: Flask | None = None) -> State:
    """The extension's state for ``app`` (default: the current application).
    Raises RuntimeError, saying what to call, where ``init_app`` never ran."""
    # Runs on every protected request: one proxy lookup, no more.
    where = app if app is not None else current_app
    try:
        return cast(State, where.extensions[_KEY])
    except KeyError:
        raise RuntimeError(
            f"flask-apitokens is not set up on the application {where.name!r}: call "
            "APITokens.init_app(app, db=db, user_model=User) (or APITokens(app, ...)) in your app factory"
        ) from None


def state_if_set_up() -> State | None:
    """The current application's state, or None outside an application
    context or on an application without the extension (SQLAlchemy events
    fire for every session of the process)."""
    if not has_app_context():
        return None
    return cast("State | None", current_app.extensions.get(_KEY))


def refuse_second_init_app(app: Flask) -> None:
    if _KEY in app.extensions:
        raise RuntimeError("flask-apitokens: init_app was already called on this application")


def set_up(app: Flask, new: State) -> None:
    """Keep ``new`` as ``app``'s state (after :func:`refuse_second_init_app`)."""
    app.extensions[_KEY] = new
