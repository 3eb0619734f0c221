"""Issue 14 (part A): no credential reaches more than its owner granted.

Each test attacks one finding over HTTP, as an outside reviewer would: the
Flask test client against the host app and the demo, and Authlib's own OAuth2
client against the real server on 127.0.0.1 for the OAuth2 findings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from authlib.integrations.base_client import OAuthError
from flask import Flask

from flask_apitokens.models import utcnow
from flask_apitokens.oauth2 import clients, grants_store
from tests import hostapp
from tests.helpers import auth, basic, bearer, cli, host_request_loader, login, token_rows
from tests.oauth2_server import REDIRECT_URI, Served, answer_consent, authorize, oauth_session, serve

CROSS_SITE = [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]


def tid(token: str) -> str:
    """The public id of an ``apt_<id>:<secret>`` token."""
    return token.split(":")[0].split("_", 1)[1]


def row(app: Flask, token_id: str) -> Any:
    return next((found for found in token_rows(app) if found.id == token_id), None)


def snapshot(app: Flask) -> list[tuple[Any, ...]]:
    """Every token row as plain values, to check that nothing changed."""
    return sorted((r.id, r.scopes, r.expires_at, r.revoked_at, r.parent_id, getattr(r, "replaced_by", None))
                  for r in token_rows(app))


def set_expires(app: Flask, token_id: str, moment: dt.datetime) -> None:
    T = app.extensions["apitokens"].models.Token
    hostapp.db.session.execute(sa.update(T).where(T.id == token_id).values(expires_at=moment))
    hostapp.db.session.commit()


def purge(app: Flask) -> None:
    result = cli(app, "purge-expired")
    assert result.exit_code == 0, result.output


# -- finding 2: the request loader logs a credential in only with `login` ----------------------------
@pytest.mark.parametrize("scopes", [[], ["reports:read"], ["tokens"], ["reports:read", "reports:write", "tokens"]])
def test_a_token_without_login_is_no_user_on_login_required_views(client: Any, user: Any, issue: Callable[..., str],
                                                                  scopes: list[str]) -> None:
    token = issue(user, scopes=scopes)
    response = client.get("/flask-login", headers=auth(token))
    assert response.status_code == 401  # Flask-Login's unauthorized answer (no login view on this host)
    assert b"alice" not in response.data
    # The views it is scoped for keep working, and see their owner as current_user.
    if "reports:read" in scopes:
        assert client.get("/reports", headers=auth(token)).json["user"] == "alice"
    assert client.get("/either", headers=auth(token)).json["user"] == "alice"


def test_a_token_with_login_acts_as_its_owner(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["login"])
    assert client.get("/flask-login", headers=auth(token)).json == {"user": "alice"}
    assert client.get("/reports", headers=auth(token)).status_code == 403  # login is not reports:read


def test_login_is_a_declared_scope_a_session_may_ask_for(app: Flask, client: Any, user: Any) -> None:
    assert app.extensions["apitokens"].settings.scopes["login"] == "Act as its owner on the site's own pages."
    login(client)
    made = client.post("/api/token", json={"scopes": ["login", "reports:read"]})
    assert made.status_code == 200, made.json
    assert row(app, tid(made.json["token"])).scopes == "login reports:read"


def test_a_user_token_without_login_is_no_user(client: Any, user: Any) -> None:
    plain = client.post("/api/user-token", headers=basic()).json["user-token"]
    with_login = client.post("/api/user-token", headers=basic(), json={"scopes": ["login"]}).json["user-token"]
    assert client.get("/flask-login", headers=bearer(plain)).status_code == 401
    assert client.get("/plain", headers=bearer(plain)).status_code == 200
    assert client.get("/flask-login", headers=bearer(with_login)).json == {"user": "alice"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Flask]:
    from example_app import create_app
    from example_app.models import db

    app = create_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'demo.sqlite3'}", SECRET_KEY="demo test key!!!!",
                     WTF_CSRF_ENABLED=False)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_demos_page_of_data_needs_login_and_its_json_twin_data_read(demo: Flask) -> None:
    result = demo.test_cli_runner().invoke(args=["create-user", "dana", "--email", "d@example.com",
                                                 "--password", "dana-password"])
    assert result.exit_code == 0, result.output
    assert set(demo.extensions["apitokens"].settings.scopes) >= {"data:read", "data:write", "login", "tokens"}

    def token(*scopes: str) -> str:
        answer = demo.test_client().post("/api/authenticate/userpass",
                                         json={"username": "dana", "password": "dana-password", "scopes": scopes})
        assert answer.status_code == 200, answer.json
        return str(answer.json["token"])

    client = demo.test_client()
    for scopes in ((), ("data:read",), ("data:read", "data:write", "tokens")):
        page = client.get("/data", headers=auth(token(*scopes)))
        assert page.status_code == 302 and "/login" in page.headers["Location"], scopes  # no user: to the login page
    reader = token("data:read")
    data = client.get("/api/data", headers=auth(reader))
    assert data.status_code == 200 and data.json["owner"] == "dana"
    assert client.get("/api/data", headers=auth(token("login"))).status_code == 403
    page = client.get("/data", headers=auth(token("login")))
    assert page.status_code == 200 and b"Quarterly report" in page.data


# -- finding 10: credentials not in our format go on to the host's own request loader -----------------
def test_the_hosts_own_bearer_tokens_reach_the_hosts_request_loader(make_app: Callable[..., Flask]) -> None:
    def answer(header: str) -> Any:
        if header == "Bearer host-own-token-for-alice":
            return hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="alice")).scalar()
        return None

    with host_request_loader(answer) as calls:
        app = make_app()
        with app.app_context():
            alice = hostapp.make_user("alice")
            client = app.test_client()
            host_token = {"Authorization": "Bearer host-own-token-for-alice"}
            assert client.get("/flask-login", headers=host_token).json == {"user": "alice"}
            assert calls == ["Bearer host-own-token-for-alice"]
            # The extension's decorators still refuse it: it is not one of ours.
            refused = client.get("/plain", headers=host_token)
            assert refused.status_code == 401 and refused.json["error"] == "invalid_token"
            assert client.get("/flask-login", headers={"Authorization": "Bearer something else"}).status_code == 401
            assert calls[-1] == "Bearer something else"
            # One of ours is ours: checked by the extension, never shown to the host's loader.
            calls.clear()
            service = app.extensions["apitokens"].service
            ours = service.issue(alice, via="cli", scopes=["login"])
            assert client.get("/flask-login", headers=auth(ours.token, "Bearer")).json == {"user": "alice"}
            service.revoke([ours.info.id])
            assert client.get("/flask-login", headers=auth(ours.token, "Bearer")).status_code == 401
            assert calls == []


# -- finding 1: making a credential from a credential never widens it ---------------------------------
def test_rotate_with_a_narrower_token_is_refused_and_changes_nothing(app: Flask, client: Any, user: Any,
                                                                     issue: Callable[..., str]) -> None:
    wide = issue(user, name="deploy", scopes=["reports:read", "reports:write", "tokens"])
    narrow = issue(user, scopes=["tokens"])
    before = snapshot(app)
    response = client.post(f"/api/tokens/{tid(wide)}/rotate", headers=auth(narrow))
    assert response.status_code == 403 and response.json["error"] == "insufficient_scope"
    assert "token" not in response.json
    assert snapshot(app) == before
    # A credential holding every scope of the token may rotate it.
    peer = issue(user, scopes=["reports:read", "reports:write", "tokens"])
    rotated = client.post(f"/api/tokens/{tid(wide)}/rotate", headers=auth(peer))
    assert rotated.status_code == 200
    assert row(app, rotated.json["id"]).scopes == "reports:read reports:write tokens"


def test_mint_with_a_narrower_token_is_refused(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    narrow = issue(user, scopes=["tokens"])
    before = snapshot(app)
    for scopes in (["reports:read"], ["login"], ["tokens", "reports:write"]):
        response = client.post("/api/token", json={"scopes": scopes}, headers=auth(narrow))
        assert response.status_code == 403 and response.json["error"] == "insufficient_scope", scopes
    assert snapshot(app) == before


# -- finding 7: rotate refuses cross-site cookie requests -----------------------------------------------
@pytest.mark.parametrize("headers", CROSS_SITE)
def test_rotate_refuses_cross_site_cookie_requests(app: Flask, client: Any, user: Any, issue: Callable[..., str],
                                                   headers: dict[str, str]) -> None:
    token = issue(user, scopes=["reports:read"])
    login(client)
    before = snapshot(app)
    response = client.post(f"/api/tokens/{tid(token)}/rotate", headers=headers)
    assert response.status_code == 403 and response.json["error"] == "cross_site_request"
    assert snapshot(app) == before
    # The same site may; so may a script with no Origin at all.
    same = client.post(f"/api/tokens/{tid(token)}/rotate", headers={"Origin": "http://localhost"})
    assert same.status_code == 200
    assert client.post(f"/api/tokens/{same.json['id']}/rotate").status_code == 200


# -- finding 3: lineage ---------------------------------------------------------------------------------------
def test_a_token_made_with_a_token_is_its_child(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    parent = app.extensions["apitokens"].service.issue(user, via="cli", scopes=["reports:read", "tokens"],
                                                       expires_in=3600)
    made = client.post("/api/token", json={"scopes": ["reports:read"], "expires_in": 365 * 86400},
                       headers=auth(parent.token))
    assert made.status_code == 200
    child = row(app, tid(made.json["token"]))
    assert child.parent_id == parent.info.id
    assert child.expires_at == parent.info.expires_at  # never after its parent
    assert made.json["expiresOn"] == parent.info.to_json()["expiresOn"]
    login(client)
    assert set(client.delete(f"/api/tokens/{parent.info.id}").json["revoked"]) == {parent.info.id, child.id}
    assert client.get("/reports", headers=auth(made.json["token"])).status_code == 401


def test_a_user_token_mints_no_token_that_outlives_it(app: Flask, client: Any, user: Any) -> None:
    jwt = client.post("/api/user-token", headers=basic(), json={"scopes": ["tokens", "reports:read"]})
    made = client.post("/api/token", headers=bearer(jwt.json["user-token"]),
                       json={"scopes": ["reports:read"], "expires_in": 365 * 86400})
    assert made.status_code == 200
    record = next(r for r in token_rows(app) if r.kind == "user-token")
    child = row(app, tid(made.json["token"]))
    assert child.parent_id == record.id and child.expires_at == record.expires_at  # 24 hours, not a year
    app.extensions["apitokens"].service.revoke([record.id])
    assert client.get("/reports", headers=auth(made.json["token"])).status_code == 401


def test_a_never_expiring_child_of_an_expiring_parent_gets_its_expiry(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_MAX_LIFETIME=None, APITOKENS_SESSION_EXPIRES_IN=None)
    with app.app_context():
        parent = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli", scopes=["tokens"],
                                                           expires_in=7200)
        made = app.test_client().post("/api/token", headers=auth(parent.token))
        assert made.status_code == 200
        assert row(app, tid(made.json["token"])).expires_at == parent.info.expires_at


def test_a_thief_who_rotates_a_stolen_token_loses_it_when_the_owner_revokes_the_original(
        app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    stolen = issue(user, name="ci", scopes=["reports:read", "tokens"])
    thief = app.test_client()
    rotated = thief.post(f"/api/tokens/{tid(stolen)}/rotate", headers=auth(stolen))
    assert rotated.status_code == 200
    login(client)
    revoked = client.delete(f"/api/tokens/{tid(stolen)}")
    assert revoked.status_code == 200 and set(revoked.json["revoked"]) == {tid(stolen), rotated.json["id"]}
    assert thief.get("/reports", headers=auth(rotated.json["token"])).status_code == 401
    assert row(app, rotated.json["id"]).revoked_at is not None


def test_rotating_a_rotated_token_is_refused_and_revokes_the_family(app: Flask, client: Any, user: Any,
                                                                   issue: Callable[..., str]) -> None:
    original = issue(user, name="ci", scopes=["reports:read", "tokens"])
    first = client.post(f"/api/tokens/{tid(original)}/rotate", headers=auth(original))
    assert first.status_code == 200
    second = client.post(f"/api/tokens/{first.json['id']}/rotate", headers=auth(first.json["token"]))
    assert second.status_code == 200
    # A copy of the middle token comes back: it was rotated already.
    again = app.test_client().post(f"/api/tokens/{first.json['id']}/rotate", headers=auth(first.json["token"]))
    assert again.status_code == 409 and again.json["error"] == "token_reused"
    assert "token" not in again.json
    for token in (original, first.json["token"], second.json["token"]):
        assert client.get("/reports", headers=auth(token)).status_code == 401
    assert all(r.revoked_at is not None for r in token_rows(app))
    assert len(token_rows(app)) == 3


def test_a_rotated_child_stays_in_its_parents_lineage(app: Flask, client: Any, user: Any) -> None:
    service = app.extensions["apitokens"].service
    parent = service.issue(user, via="cli", scopes=["reports:read", "tokens"], expires_in=3600)
    child = client.post("/api/token", json={"scopes": ["reports:read", "tokens"]}, headers=auth(parent.token)).json
    successor = client.post(f"/api/tokens/{tid(child['token'])}/rotate", headers=auth(child["token"]))
    assert successor.status_code == 200
    assert row(app, successor.json["id"]).expires_at <= parent.info.expires_at
    service.revoke([parent.info.id])
    assert client.get("/reports", headers=auth(successor.json["token"])).status_code == 401


# -- OAuth2: the consent page, lineage and revoke app -----------------------------------------------------
@pytest.fixture
def served(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = make_app(APITOKENS_LOGIN_VIEW="/login")
    with app.app_context():
        hostapp.make_user("alice")
    with serve(app) as running, app.app_context():
        yield running


def register(*scopes: str) -> Any:
    return clients.create_client(name="Report Viewer", public=True, scopes=list(scopes),
                                 redirect_uris=[REDIRECT_URI]).client


def oauth_tokens(served: Served, client: Any, scope: str) -> tuple[Any, dict[str, Any]]:
    session = oauth_session(client, scope=scope)
    location, _, verifier = authorize(served, served.login(), session)
    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    return session, token


def as_bearer(served: Served, path: str, token: str, method: str = "get", **options: Any) -> requests.Response:
    return requests.request(method, served.url + path, headers=bearer(token), timeout=10,
                            **options)


def test_an_oauth2_token_whose_consent_said_nothing_of_login_is_no_user(served: Served) -> None:
    _, token = oauth_tokens(served, register("reports:read"), "reports:read")
    assert as_bearer(served, "/reports", token["access_token"]).json()["user"] == "alice"
    assert as_bearer(served, "/flask-login", token["access_token"]).status_code == 401


def test_an_oauth2_token_logs_in_only_when_login_was_approved(served: Served) -> None:
    reader = register("reports:read", "login")
    _, token = oauth_tokens(served, reader, "reports:read")
    assert as_bearer(served, "/flask-login", token["access_token"]).status_code == 401

    session = oauth_session(reader, scope="reports:read login")
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 48)
    page = served.login().get(url, timeout=10)
    assert page.status_code == 200
    assert "<code>login</code>: Act as its owner on the site&#39;s own pages." in page.text
    _, token = oauth_tokens(served, reader, "reports:read login")
    assert token["scope"] == "login reports:read"
    assert as_bearer(served, "/flask-login", token["access_token"]).json() == {"user": "alice"}


def test_a_client_not_allowed_login_cannot_get_it(served: Served) -> None:
    client = register("reports:read")
    session = oauth_session(client, scope="reports:read login")
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 48)
    answer = served.login().get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and "error=invalid_scope" in answer.headers["Location"]
    assert token_rows(served.app) == []


def test_an_app_granted_only_tokens_cannot_rotate_a_wider_token(served: Served) -> None:
    alice = hostapp.db.session.execute(sa.select(hostapp.User)).scalar_one()
    wide = served.app.extensions["apitokens"].service.issue(alice, via="cli", scopes=["reports:read", "tokens"])
    app_session, _ = oauth_tokens(served, register("tokens"), "tokens")
    before = snapshot(served.app)
    answer = app_session.post(served.url + f"/api/tokens/{wide.info.id}/rotate", timeout=10)
    assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"
    assert snapshot(served.app) == before


def test_a_token_an_app_mints_dies_with_its_access_token_and_with_revoke_app(served: Served) -> None:
    client = register("reports:read", "tokens")
    _, token = oauth_tokens(served, client, "reports:read tokens")
    minted = as_bearer(served, "/api/token", token["access_token"], method="post",
                       json={"scopes": ["reports:read"], "expires_in": 365 * 86400})
    assert minted.status_code == 200
    child = row(served.app, tid(minted.json()["token"]))
    access = next(r for r in token_rows(served.app) if r.kind == "oauth2")
    assert child.parent_id == access.id and child.expires_at == access.expires_at  # an hour, not a year
    assert as_bearer(served, "/reports", minted.json()["token"]).status_code == 200
    alice = hostapp.db.session.execute(sa.select(hostapp.User)).scalar_one()
    revoked = grants_store.revoke_app(alice, client.client_id)
    assert child.id in revoked
    assert as_bearer(served, "/reports", minted.json()["token"]).status_code == 401


# -- finding 4: log out everywhere ends OAuth2 refresh tokens and grants, whatever was purged -------------
def test_log_out_everywhere_ends_an_apps_refresh_token_after_a_purge(served: Served) -> None:
    client = register("reports:read")
    session, token = oauth_tokens(served, client, "reports:read")
    access = next(r for r in token_rows(served.app) if r.kind == "oauth2")
    set_expires(served.app, access.id, utcnow() - dt.timedelta(seconds=1))
    purge(served.app)
    assert [r.kind for r in token_rows(served.app)] == ["refresh"]

    browser = served.login()
    answer = browser.delete(served.url + "/api/tokens", timeout=10)
    assert answer.status_code == 200
    (refresh,) = token_rows(served.app)
    assert answer.json()["revoked"] == [refresh.id] and refresh.revoked_at is not None
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"
    alice = hostapp.db.session.execute(sa.select(hostapp.User)).scalar_one()
    assert grants_store.list_approved_apps(alice) == []  # the approval went too: the app must ask again


def test_log_out_everywhere_spends_codes_not_yet_exchanged(served: Served) -> None:
    client = register("reports:read")
    session = oauth_session(client, scope="reports:read")
    browser = served.login()
    location, _, verifier = authorize(served, browser, session)
    assert browser.delete(served.url + "/api/tokens", timeout=10).status_code == 200
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert caught.value.error == "invalid_grant"
    assert token_rows(served.app) == []


# -- finding 5: purge-expired keeps what reuse detection needs ---------------------------------------------
def test_purge_keeps_rotated_refresh_tokens_while_their_family_lives(served: Served) -> None:
    client = register("reports:read")
    session, first = oauth_tokens(served, client, "reports:read")
    second = session.refresh_token(served.url + "/oauth/token", refresh_token=first["refresh_token"])
    purge(served.app)
    # The rotated refresh token comes back (a copy leaked): the family ends.
    replay = requests.post(served.url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": client.client_id},
        timeout=10)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert as_bearer(served, "/reports", second["access_token"]).status_code == 401
    with pytest.raises(OAuthError):
        session.refresh_token(served.url + "/oauth/token", refresh_token=second["refresh_token"])
    # A family that is over entirely goes at the next purge.
    purge(served.app)
    assert token_rows(served.app) == []


def test_purge_keeps_a_rotated_api_token_while_its_successor_lives(app: Flask, client: Any, user: Any,
                                                                  issue: Callable[..., str]) -> None:
    original = issue(user, scopes=["reports:read", "tokens"])
    rotated = client.post(f"/api/tokens/{tid(original)}/rotate", headers=auth(original)).json
    set_expires(app, tid(original), utcnow() - dt.timedelta(seconds=1))  # the grace period is over
    purge(app)
    assert {r.id for r in token_rows(app)} == {tid(original), rotated["id"]}
    # A copy of the original is rotated: reuse, seen even after the purge.
    again = app.test_client().post(f"/api/tokens/{tid(original)}/rotate", headers=auth(rotated["token"]))
    assert again.status_code == 409 and again.json["error"] == "token_reused"
    assert client.get("/reports", headers=auth(rotated["token"])).status_code == 401
    purge(app)
    assert token_rows(app) == []


def test_purge_still_removes_plain_expired_and_revoked_rows(app: Flask, user: Any, issue: Callable[..., str]) -> None:
    service = app.extensions["apitokens"].service
    live = service.issue(user, via="cli")
    expired = service.issue(user, via="cli")
    set_expires(app, expired.info.id, utcnow() - dt.timedelta(seconds=1))
    service.revoke([service.issue(user, via="cli").info.id])
    purge(app)
    assert [r.id for r in token_rows(app)] == [live.info.id]


def test_denying_a_login_request_on_the_consent_page_gives_nothing(served: Served) -> None:
    client = register("reports:read", "login")
    session = oauth_session(client, scope="login")
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="w" * 48)
    location = answer_consent(served, served.login(), url, decision="deny")
    assert "error=access_denied" in location
    assert re.search(r"code=", location) is None
    assert token_rows(served.app) == []


def test_two_concurrent_rotations_of_one_token_give_one_token_and_end_the_family(served: Served) -> None:
    import threading

    alice = hostapp.db.session.execute(sa.select(hostapp.User)).scalar_one()
    token = served.app.extensions["apitokens"].service.issue(alice, via="cli", scopes=["reports:read", "tokens"])
    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def rotate() -> None:
        barrier.wait()
        answers.append(as_bearer(served, f"/api/tokens/{token.info.id}/rotate", token.token, method="post"))

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answer.status_code for answer in answers) == [200, 409], [a.text for a in answers]
    made = next(answer.json() for answer in answers if answer.status_code == 200)
    # Only one successor was ever recorded, and the reuse revoked it with the original.
    assert {r.id for r in token_rows(served.app)} == {token.info.id, made["id"]}
    assert all(r.revoked_at is not None for r in token_rows(served.app))
    assert as_bearer(served, "/reports", made["token"]).status_code == 401
