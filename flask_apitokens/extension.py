"""APITokens: the Flask extension object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from . import errors, startup
from .config import load_settings
from .credentials import install_request_loader
from .models import build_models
from .service import TokenService
from .state import State, refuse_second_init_app, set_up
from .state import state as state_of
from .users import SQLAlchemyUserStore, UserStore
from .web import error_response, json_routing_errors


class APITokens:
    """API access tokens for a Flask application.

    ``APITokens(app, db=db, user_model=User)``, or ``APITokens()`` and later
    ``init_app(app, db=db, user_model=User)``. Call it before ``db.create_all()``
    so the extension's tables are created with the host's.

    :param db: the host's Flask-SQLAlchemy instance.
    :param user_model: the host's user model (a single-column primary key).
    :param user_store: replaces the default :class:`~flask_apitokens.users.SQLAlchemyUserStore`.
    :param settings: ``APITOKENS_*`` values that take precedence over ``app.config``
        (given without the prefix, e.g. ``URL_PREFIX="/v1"``).
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self._options = options
        if app is not None:
            self.init_app(app, **options)

    def init_app(self, app: Flask, *, db: Any = None, user_model: Any = None,
                 user_store: UserStore | None = None, **settings: Any) -> None:
        refuse_second_init_app(app)  # before any work
        db = db if db is not None else self._options.get("db")
        user_model = user_model if user_model is not None else self._options.get("user_model")
        user_store = user_store if user_store is not None else self._options.get("user_store")
        if db is None or user_model is None:
            raise RuntimeError("flask-apitokens: init_app needs db= (Flask-SQLAlchemy) and user_model=")
        overrides = {**{k: v for k, v in self._options.items() if k not in ("db", "user_model", "user_store")},
                     **settings}
        loaded = load_settings(app.config, {f"APITOKENS_{k}": v for k, v in overrides.items()})
        startup.check_user_model(user_model, loaded.values, default_store=user_store is None)
        models = build_models(db, user_model)
        users = user_store if user_store is not None else SQLAlchemyUserStore(
            db, user_model, password_hash_method=loaded["PASSWORD_HASH_METHOD"])
        service = TokenService(app, db, models, users, loaded)
        state = State(app, db, models, users, loaded, service)
        set_up(app, state)

        from . import openapi_document
        from .cli import apitokens_cli
        from .views import api

        api_blueprint = api.create_blueprint(state)
        openapi_document.register(api_blueprint)
        app.register_blueprint(api_blueprint, url_prefix=loaded["URL_PREFIX"])
        from . import oauth2

        state.oauth2_models = oauth2.build_models(state)
        if loaded["OAUTH2_SERVER"]:
            oauth2.register(app, state)
        if loaded["UI"]:
            self._register_ui(app, state)
        # The OAuth2 endpoints check their own consent form and client credentials.
        oauth2_blueprint = app.blueprints.get("apitokens_oauth2")
        self._exempt_from_csrf(app, api_blueprint, *([oauth2_blueprint] if oauth2_blueprint else []))
        app.register_error_handler(errors.APITokensError, error_response)
        json_routing_errors(app, loaded["URL_PREFIX"])
        app.cli.add_command(apitokens_cli)
        self._hook_login_manager(app)
        startup.install_scope_check(app, loaded.scopes)
        self._unprepared(app, db, user_model)
        if loaded["REVOKE_ON_PASSWORD_CHANGE"]:
            from . import password_change

            password_change.install(state, user_model)
        # Last: it wraps the credential routes of every blueprint registered above.
        from . import ratelimit

        state.limiter = ratelimit.init_app(app, state)

    @staticmethod
    def _register_ui(app: Flask, state: State) -> None:
        from .views import page, ui

        blueprint = page.create_blueprint()
        ui.register(blueprint)
        if state.settings["OAUTH2_SERVER"]:
            from .oauth2 import admin

            admin.register(blueprint)
        app.register_blueprint(blueprint, url_prefix=state.settings["UI_URL_PREFIX"])

    @staticmethod
    def _exempt_from_csrf(app: Flask, *blueprints: Any) -> None:
        """The JSON and OAuth2 routes guard themselves (credentials in headers, an
        Origin check where a cookie counts, a signed consent form) and their clients
        have no form token, so the host's Flask-WTF CSRFProtect must not refuse them:
        exempt them now, or on the first request if CSRFProtect comes later."""
        def exempt() -> bool:
            csrf = app.extensions.get("csrf")
            if csrf is None:
                return False
            for blueprint in blueprints:
                csrf.exempt(blueprint)
            return True

        if not exempt():
            # Runs before CSRFProtect's own check, which was registered after this one.
            _on_first_request(app, exempt)

    @staticmethod
    def _hook_login_manager(app: Flask) -> None:
        """Install the request loader now, or on the first request if Flask-Login
        is set up after this extension."""
        def install() -> None:
            if hasattr(app, "login_manager"):
                install_request_loader(app.login_manager)

        if hasattr(app, "login_manager"):
            install()
        else:
            _on_first_request(app, install)

    @staticmethod
    def _unprepared(app: Flask, db: Any, user_model: Any) -> None:
        """Keep the extension's statements off psycopg's named prepared
        statements (PgBouncer in transaction mode), now or, if Flask-SQLAlchemy
        is set up on the app after this extension, on the first request."""
        from . import unprepared

        def install() -> None:
            unprepared.install(db.engine, [user_model.__table__.name])

        try:
            with app.app_context():
                install()
        except (KeyError, RuntimeError):  # db.init_app(app) has not run yet
            _on_first_request(app, install)

    @staticmethod
    def state(app: Flask | None = None) -> State:
        """The extension's state for ``app`` (default: the current application)."""
        return state_of(app)

    def revoke_all(self, user: Any, *, reason: str = "revoked") -> list[str]:
        """Revoke every credential ``user`` holds (tokens, user-tokens, OAuth2
        access and refresh tokens; not the administrator's API keys), forget the
        OAuth2 apps they approved, and commit: what "log out everywhere" does, for
        example after a password change. ``reason`` (at most 32 characters) is
        recorded with each and sent with ``token_revoked``. Returns the ids revoked."""
        from .leaks import revoke_all

        state = self.state()
        return revoke_all(state, state.users.user_id(user), reason=reason)

    @property
    def service(self) -> TokenService:
        """The current application's :class:`~flask_apitokens.service.TokenService`."""
        return self.state().service


def _on_first_request(app: Flask, setup: Callable[[], Any]) -> None:
    """Run ``setup`` before the first request, then never again. Extensions
    set up later than this one are there by then, and none can be set up
    after it (Flask refuses new hooks once a request was handled), so the hook
    takes itself off instead of costing every request a call."""

    def once() -> None:
        hooks = app.before_request_funcs[None]
        if once in hooks:
            # A new list: Flask is iterating over the current one.
            app.before_request_funcs[None] = [hook for hook in hooks if hook is not once]
            setup()

    app.before_request(once)
