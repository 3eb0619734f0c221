"""Log in with GitHub: an OAuth web login (Authlib's Flask client) through the
provider the extension is configured with (``APITOKENS_OAUTH_PROVIDERS["github"]``).

Switched on by ``GITHUB_CLIENT_ID`` and ``GITHUB_CLIENT_SECRET`` (an OAuth app
registered at GitHub with the callback ``<site>/login/github/callback``);
``GITHUB_WEB_URL`` points the authorize and access-token URLs elsewhere (the
tests' fake GitHub). GitHub's user API then says who logged in, and the same
code as ``POST /api/authenticate/github`` finds, links or creates the local
user, with a verified email of the account.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, current_app, flash, redirect, url_for
from flask_login import login_user

from flask_apitokens import APITokensError
from flask_apitokens.methods.providers import find_or_create_user
from flask_apitokens.providers import ProviderRegistry, load_providers

blueprint = Blueprint("github_login", __name__)


def _github() -> Any:
    # One Authlib client per application (a module-level one would keep the first app's URLs).
    return current_app.extensions["github_login"].github


def init_github_login(app: Flask) -> bool:
    """Register the login routes when GitHub is configured; True if it is."""
    providers = app.config.get("APITOKENS_OAUTH_PROVIDERS") or {}
    if "github" not in providers or not app.config.get("GITHUB_CLIENT_ID"):
        return False
    web = str(app.config.get("GITHUB_WEB_URL", "https://github.com/")).rstrip("/")
    oauth = app.extensions["github_login"] = OAuth(app)
    oauth.register("github", client_id=app.config["GITHUB_CLIENT_ID"],
                   client_secret=app.config.get("GITHUB_CLIENT_SECRET"),
                   authorize_url=web + "/login/oauth/authorize", access_token_url=web + "/login/oauth/access_token",
                   client_kwargs={"scope": "read:user user:email"})
    app.register_blueprint(blueprint)
    app.context_processor(lambda: {"github_login_enabled": True})
    return True


def _refused(message: str) -> Any:
    flash(message)
    return redirect(url_for("login"))


@blueprint.get("/login/github")
def start() -> Any:
    return _github().authorize_redirect(url_for("github_login.callback", _external=True))


@blueprint.get("/login/github/callback")
def callback() -> Any:
    from . import apitokens, db

    try:
        token = _github().authorize_access_token()
    except OAuthError as error:  # denied at GitHub, or a state that does not match
        return _refused(f"GitHub login failed: {error.error}.")
    state = apitokens.state()
    registry = ProviderRegistry(load_providers(state.settings["OAUTH_PROVIDERS"]),
                                timeout=state.settings["PROVIDER_TIMEOUT"])
    try:
        account = registry.account(registry.get("github"), token["access_token"])
        if not account.verified_emails:
            return _refused("Your GitHub account has no verified email address.")
        user = find_or_create_user("github", account, account.verified_emails[0])
        if not state.users.is_active(user):
            db.session.rollback()
            return _refused("This account is disabled.")
        db.session.commit()
    except APITokensError as error:
        db.session.rollback()
        return _refused(error.message)
    login_user(user)
    return redirect(url_for("index"))
