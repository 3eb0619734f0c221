"""``/oauth-demo``: the demo site plays a third-party app against its own OAuth2 server.

It uses Authlib's requests client, like a real app would: it sends you to
``/oauth/authorize`` (log in, approve), takes the code at its callback,
exchanges it with PKCE at ``/oauth/token``, and then calls ``/api/data`` with the
access token, refreshes it and revokes it, all over HTTP.

The "third-party app" keeps its tokens in the Flask session cookie (signed, not
encrypted) to stay small; a real app keeps them on its server.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import Blueprint, Flask, redirect, render_template, request, session, url_for

from flask_apitokens import errors
from flask_apitokens.oauth2 import clients

CLIENT_ID = "demo-client"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:5000/oauth-demo/callback"
SCOPE = "data:read"

blueprint = Blueprint("oauth_demo", __name__, url_prefix="/oauth-demo")


def register_demo_client(app: Flask) -> None:
    """Register the public client ``demo-client`` once (a restart keeps it).

    Its redirect URI is ``OAUTH_DEMO_REDIRECT_URI`` (``FLASK_OAUTH_DEMO_REDIRECT_URI``
    in the environment) for a demo served elsewhere than 127.0.0.1:5000."""
    redirect_uri = app.config.get("OAUTH_DEMO_REDIRECT_URI", DEFAULT_REDIRECT_URI)
    uris = [redirect_uri, redirect_uri.replace("127.0.0.1", "localhost")]
    with app.app_context():
        existing = clients.get_client(CLIENT_ID)
        if existing is None:
            try:
                clients.create_client(client_id=CLIENT_ID, name="OAuth demo app", public=True, scopes=[SCOPE],
                                      redirect_uris=uris)
            except errors.BadRequest as exc:
                if exc.code != "client_exists":
                    raise
                # Another worker process registered it first (gunicorn -w 4).
        elif existing.redirect_uri_list != list(dict.fromkeys(uris)):
            existing.redirect_uris = "\n".join(dict.fromkeys(uris))
            app.extensions["apitokens"].service.commit()
    # Authlib's client refuses plain http; the demo runs on http://127.0.0.1.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


def _server() -> str:
    return request.host_url.rstrip("/")


def _client(**options: Any) -> OAuth2Session:
    return OAuth2Session(CLIENT_ID, token_endpoint_auth_method="none", revocation_endpoint_auth_method="none",
                         code_challenge_method="S256", scope=SCOPE,
                         redirect_uri=url_for("oauth_demo.callback", _external=True), **options)


def _show(**context: Any) -> Any:
    return render_template("oauth_demo.html", token=session.get("demo_token"), **context)


@blueprint.get("")
def home() -> Any:
    return _show()


@blueprint.post("/start")
def start() -> Any:
    verifier = generate_token(48)
    url, state = _client().create_authorization_url(_server() + "/oauth/authorize", code_verifier=verifier)
    session["demo_oauth"] = {"state": state, "verifier": verifier}
    return redirect(url)


@blueprint.get("/callback")
def callback() -> Any:
    pending = session.pop("demo_oauth", None)
    if "error" in request.args:
        return _show(error=f"The server said: {request.args['error']} ({request.args.get('error_description', '')})")
    if not pending:
        return _show(error="No authorization in progress; start again.")
    try:
        token = _client(state=pending["state"]).fetch_token(
            _server() + "/oauth/token", authorization_response=request.url, code_verifier=pending["verifier"],
            timeout=10)
    except (OAuthError, requests.RequestException) as error:
        return _show(error=f"Exchanging the code failed: {error}")
    session["demo_token"] = dict(token)
    return redirect(url_for("oauth_demo.home"))


@blueprint.post("/call")
def call() -> Any:
    token = session.get("demo_token")
    if not token:
        return redirect(url_for("oauth_demo.home"))
    response = requests.get(_server() + "/api/data", timeout=10,
                            headers={"Authorization": f"Bearer {token['access_token']}"})
    return _show(result={"status": response.status_code, "body": response.text})


@blueprint.post("/refresh")
def refresh() -> Any:
    token = session.get("demo_token")
    if not token:
        return redirect(url_for("oauth_demo.home"))
    try:
        session["demo_token"] = dict(_client().refresh_token(_server() + "/oauth/token",
                                                             refresh_token=token["refresh_token"], timeout=10))
    except (OAuthError, requests.RequestException) as error:
        return _show(error=f"Refreshing failed: {error}")
    return _show(message="Refreshed: new access token and new refresh token (the old refresh token is spent).")


@blueprint.post("/revoke")
def revoke() -> Any:
    token = session.pop("demo_token", None)
    if token:
        _client().revoke_token(_server() + "/oauth/revoke", token=token["refresh_token"],
                               token_type_hint="refresh_token", timeout=10)
    return _show(message="Revoked the refresh token, and with it every token of this authorization.")
