"""The demo application, built through its own factory, as a new user tries it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo(tmp_path: Path) -> Any:
    from example_app import create_app
    from example_app.models import db

    app = create_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'demo.sqlite3'}", SECRET_KEY="demo test key!!!!")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def create_user(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["create-user", *args])


def test_login_page_session_token_and_protected_views(demo: Flask) -> None:
    result = create_user(demo, "dana", "--email", "dana@example.com", "--password", "dana-password",
                         "--organization", "Dana Org")
    assert result.exit_code == 0, result.output
    client = demo.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/login", data={"username": "dana", "password": "wrong", "csrf_token": csrf}).status_code == 401
    response = client.post("/login", data={"username": "dana", "password": "dana-password", "csrf_token": csrf})
    assert response.status_code == 302
    assert client.get("/data").status_code == 200

    token = client.post("/api/token", json={"scopes": ["data:read"]}).json["token"]
    anonymous = demo.test_client()
    assert anonymous.get("/api/data").status_code == 401
    data = anonymous.get("/api/data", headers={"Authorization": f"token {token}"})
    assert data.status_code == 200 and data.json["owner"] == "dana"
    # The page of data is @login_required: a data:read token is no user there, one with login is.
    assert anonymous.get("/data", headers={"Authorization": f"token {token}"}).status_code == 302
    login_token = client.post("/api/token", json={"scopes": ["login"]}).json["token"]
    page = anonymous.get("/data", headers={"Authorization": f"token {login_token}"})
    assert page.status_code == 200 and b"Quarterly report" in page.data
    assert anonymous.get("/data").status_code == 302  # to the login page


def test_create_user_errors_and_flags(demo: Flask) -> None:
    assert create_user(demo, "erin", "--email", "erin@example.com", "--password", "pw", "--admin").exit_code == 0
    again = create_user(demo, "erin", "--email", "erin@example.com", "--password", "pw")
    assert again.exit_code == 1 and "exists" in again.output
    assert create_user(demo, "erin", "--email", "x@example.com", "--password", "pw", "--if-missing").exit_code == 0
    assert create_user(demo, "frank").exit_code == 2  # click: missing options
    token = demo.test_client().post("/api/authenticate/userpass",
                                    data={"username": "erin", "password": "pw"}).json["token"]
    me = demo.test_client().get("/api/me", headers={"Authorization": f"token {token}"}).json
    assert me["is_admin"] is True


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    code = (
        "from example_app import create_app; app = create_app(); "
        "print(app.extensions['apitokens'].settings['USERPASS_EXPIRES_IN'], app.config['SQLALCHEMY_DATABASE_URI'])"
    )
    env = {"FLASK_APITOKENS_USERPASS_EXPIRES_IN": "1234", "EXAMPLE_DATABASE_URL": f"sqlite:///{tmp_path}/env.db",
           "FLASK_SECRET_KEY": '"an env secret key"', "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1234", f"sqlite:///{tmp_path}/env.db"]


def test_the_demo_keeps_a_generated_secret_key(tmp_path: Path) -> None:
    from example_app import _secret_key

    first = _secret_key(tmp_path)
    assert len(first) == 64 and _secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_log_in_with_github(tmp_path: Path) -> None:
    """The demo's "Log in with GitHub": the OAuth web flow against the fake
    GitHub of tests/provider_server.py over real HTTP, then the user API."""
    import requests
    import sqlalchemy as sa

    from example_app import create_app
    from example_app.models import User, db
    from tests.provider_server import Account, ProviderServer

    server = ProviderServer().start()
    try:
        server.web_clients["demo-gh"] = "demo-gh-secret"
        server.web_account = Account(4242, "octo", [("octo@example.net", True)], name="Octo Cat")
        app = create_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'gh.sqlite3'}",
                         SECRET_KEY="demo github test key", GITHUB_CLIENT_ID="demo-gh",
                         GITHUB_CLIENT_SECRET="demo-gh-secret", GITHUB_WEB_URL=server.url + "github",
                         APITOKENS_OAUTH_PROVIDERS={"github": {"api_base_url": server.url + "github/"}})

        def log_in(client: Any) -> Any:
            start = client.get("/login/github")
            assert start.status_code == 302
            assert start.location.startswith(server.url + "github/login/oauth/authorize?")
            at_github = requests.get(start.location, allow_redirects=False, timeout=10)
            assert at_github.status_code == 302
            back = at_github.headers["Location"]
            assert back.startswith("http://localhost/login/github/callback?")
            return client.get(back.removeprefix("http://localhost"))

        client = app.test_client()
        assert b'id="github-login"' in client.get("/login").data
        done = log_in(client)
        assert done.status_code == 302 and done.location == "/"
        assert client.get("/data").status_code == 200
        with app.app_context():
            users = db.session.execute(sa.select(User)).scalars().all()
            assert [(u.username, u.email) for u in users] == [("octo", "octo@example.net")]
            identities = app.extensions["apitokens"].models.Identity
            links = db.session.execute(sa.select(identities.provider, identities.subject)).all()
            assert [tuple(link) for link in links] == [("github", "4242")]
            db.session.remove()

        # Again, in another browser: the same user, no second account.
        again = app.test_client()
        assert log_in(again).status_code == 302 and again.get("/data").status_code == 200
        with app.app_context():
            assert db.session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one() == 1
            db.session.remove()

        # Denied at GitHub: back on the login page with the reason, not logged in.
        server.web_account = None
        denied = app.test_client()
        answer = log_in(denied)
        assert answer.status_code == 302 and answer.location.startswith("/login")
        assert b"GitHub login failed: access_denied" in denied.get(answer.location).data
        assert denied.get("/data").status_code == 302
    finally:
        server.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_no_github_login_without_its_settings(demo: Flask) -> None:
    assert b"github-login" not in demo.test_client().get("/login").data
    assert demo.test_client().get("/login/github").status_code == 404


def test_logout_checks_csrf_and_the_session_cookie_is_samesite_lax(demo: Flask) -> None:
    assert create_user(demo, "gail", "--email", "gail@example.com", "--password", "gail-password").exit_code == 0
    client = demo.test_client()
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": "gail", "password": "gail-password", "csrf_token": csrf})
    assert response.status_code == 302
    assert "SameSite=Lax" in response.headers["Set-Cookie"]
    # Another site's form posting to /logout (no CSRF field) does not log the person out.
    assert client.post("/logout").status_code == 400
    data = client.get("/data")
    assert data.status_code == 200
    field = re.search(r'name="csrf_token" value="([^"]+)"', data.get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": field}).status_code == 302
    assert client.get("/data").status_code == 302  # logged out: to the login page
