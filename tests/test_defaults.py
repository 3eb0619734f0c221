"""Safe defaults (issue 15, item 3): a host that sets nothing more than its
keys gets only the ways of issuing that are on by default, and ``flask routes``
shows only those."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.cli import FlaskGroup
from flask_login import LoginManager

from flask_apitokens import APITokens
from flask_apitokens.config import DEFAULTS
from tests import hostapp

#: Every way of issuing and its default; docs/methods.rst lists the same, with why.
SWITCHES = {
    "APITOKENS_SESSION_TOKENS": True,
    "APITOKENS_USERPASS": True,
    "APITOKENS_PASSWORD_EXCHANGE": False,
    "APITOKENS_USER_TOKEN": False,
    "APITOKENS_OAUTH2_SERVER": False,
    "APITOKENS_UI": True,
    "APITOKENS_OAUTH_PROVIDERS": {},
}

#: What `flask routes` of a default host shows (besides the host's own and `static`).
DEFAULT_ROUTES = {
    ("apitokens_api.session_token", "POST", "/api/token"),
    ("apitokens_api.userpass", "POST", "/api/authenticate/userpass"),
    ("apitokens_api.openapi", "GET", "/api/openapi.json"),
    ("apitokens_api.me", "GET", "/api/me"),
    ("apitokens_api.list_tokens", "GET", "/api/tokens"),
    ("apitokens_api.revoke_all_tokens", "DELETE", "/api/tokens"),
    ("apitokens_api.revoke_token", "DELETE", "/api/tokens/<token_id>"),
    ("apitokens_api.rotate_token", "POST", "/api/tokens/<token_id>/rotate"),
    # SPEC section 10: on in every host (a report needs the credential itself); GitHub's
    # secret scanning endpoint is opt-in (APITOKENS_SECRET_SCANNING).
    ("apitokens_api.report_credentials", "POST", "/api/credentials/revoke"),
    ("apitokens_ui.tokens", "GET", "/tokens"),
    ("apitokens_ui.create_token", "POST", "/tokens/create"),
    ("apitokens_ui.revoke_token", "GET, POST", "/tokens/<token_id>/revoke"),
    ("apitokens_ui.create_key", "POST", "/tokens/keys/create"),
    ("apitokens_ui.revoke_key", "GET, POST", "/tokens/keys/<token_id>/revoke"),
    ("apitokens_ui.static", "GET", "/tokens/static/<path:filename>"),
}


def test_the_defaults_of_the_ways_of_issuing() -> None:
    assert {key: DEFAULTS[key] for key in SWITCHES} == SWITCHES


@pytest.fixture
def default_host(tmp_path: Any) -> Flask:
    """A host with its own user model and only the settings it cannot do without."""
    app = Flask("default_host")
    app.config.update(SECRET_KEY="a default host's secret key", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/d.db")
    hostapp.db.init_app(app)
    LoginManager(app)
    APITokens(app, db=hostapp.db, user_model=hostapp.User)
    return app


def routes(app: Flask) -> set[tuple[str, str, str]]:
    # The host's whole `flask` command, as a shell would run it.
    result = app.test_cli_runner().invoke(FlaskGroup(create_app=lambda: app), ["routes"])
    assert result.exit_code == 0, result.output
    rows = set()
    for line in result.output.splitlines()[2:]:
        endpoint, rest = line.split(None, 1)
        methods, rule = rest.rsplit(None, 1) if "  " in rest else rest.split(None, 1)
        rows.add((endpoint, " ".join(methods.split()), rule))
    return rows


def test_flask_routes_of_a_default_host_shows_only_what_is_on(default_host: Flask) -> None:
    shown = routes(default_host)
    assert shown - {("static", "GET", "/static/<path:filename>")} == DEFAULT_ROUTES
    for path in ("/api/api_tokens", "/api/user-token", "/oauth", "/.well-known", "/api/authenticate/<provider>",
                 "/api/authenticate/ldap"):
        assert not any(rule.startswith(path) for _, _, rule in shown), path


def test_an_opt_in_route_is_a_json_404_when_off(default_host: Flask) -> None:
    client = default_host.test_client()
    response = client.post("/api/api_tokens", json={"email": "a@example.com", "password": "x"})
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.post("/api/user-token").status_code == 404
    assert client.post("/oauth/token").status_code == 404


def test_switching_on_routes_them(tmp_path: Any) -> None:
    app = hostapp.create_app(f"sqlite:///{tmp_path}/on.db",
                             APITOKENS_OAUTH_PROVIDERS={"github": {"api_base_url": "http://127.0.0.1:9/"}})
    shown = {rule for _, _, rule in routes(app)}
    for path in ("/api/api_tokens", "/api/user-token", "/oauth/token", "/oauth/authorize",
                 "/api/authenticate/<provider>"):
        assert path in shown, path
