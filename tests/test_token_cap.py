"""``APITOKENS_MAX_TOKENS_PER_USER``: issuing past the cap is ``409 too_many_tokens``
on every way of issuing; rotations replace and are allowed; revoked, expired
tokens and API keys do not count."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from flask_apitokens.models import utcnow
from flask_apitokens.service import KEY
from tests import hostapp
from tests.helpers import auth, basic, cli, create_token, login, token_rows
from tests.ldap_server import USER_PASSWORD, Slapd, slapd  # noqa: F401  (fixture)
from tests.oauth2_server import authorize, full_flow, oauth_session, register, serve
from tests.provider_server import OCTO, ProviderServer, exchange, providers_config

CAP = 2
MESSAGE = "You may have at most 2 live tokens: revoke one first."


def assert_too_many(response: Any) -> None:
    assert response.status_code == 409, response.get_json()
    assert response.get_json() == {"error": "too_many_tokens", "message": MESSAGE}


@pytest.fixture
def capped(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(APITOKENS_MAX_TOKENS_PER_USER=CAP, APITOKENS_LOGIN_VIEW="/login")
    with app.app_context():
        hostapp.make_user("alice")
        yield app


def live_rows(app: Flask, kinds: tuple[str, ...] = ("token", "user-token", "oauth2")) -> list[Any]:
    now = utcnow()
    return [row for row in token_rows(app) if row.kind in kinds and row.revoked_at is None
            and (row.expires_at is None or row.expires_at > now)]


ISSUERS: dict[str, Callable[[Any], Any]] = {
    "session": lambda client: client.post("/api/token"),
    "userpass": lambda client: client.post("/api/authenticate/userpass",
                                           data={"username": "alice", "password": "pw-correct"}),
    "exchange": lambda client: client.post("/api/api_tokens",
                                           json={"email": "alice@example.com", "password": "pw-correct"}),
    "user-token": lambda client: client.post("/api/user-token", headers=basic()),
}


@pytest.mark.parametrize("method", list(ISSUERS))
def test_each_password_and_session_route_stops_at_the_cap(capped: Flask, method: str) -> None:
    client = capped.test_client()
    login(client)
    for _ in range(CAP):
        assert ISSUERS[method](client).status_code in (200, 201)
    assert_too_many(ISSUERS[method](client))
    assert len(live_rows(capped)) == CAP  # nothing half-written
    # Every other way is refused too: the cap counts every personal token.
    for other in ISSUERS.values():
        assert_too_many(other(client))
    assert len(token_rows(capped)) == CAP


def test_the_page_and_the_cli_stop_at_the_cap(capped: Flask) -> None:
    service = capped.extensions["apitokens"].service
    alice = hostapp.db.session.get(hostapp.User, 1)
    for _ in range(CAP):
        service.issue(alice, via="cli")
    result = cli(capped, "create-token", "--user", "alice", "--json")
    assert result.exit_code != 0 and "at most 2 live tokens" in result.output
    client = capped.test_client()
    login(client)
    response = create_token(client, name="third")
    assert response.status_code == 409
    assert "at most 2 live tokens" in response.get_data(as_text=True)
    assert len(token_rows(capped)) == CAP


def test_revoked_expired_tokens_and_keys_do_not_count_and_rotation_replaces(capped: Flask) -> None:
    service = capped.extensions["apitokens"].service
    alice = hostapp.db.session.get(hostapp.User, 1)
    gone = service.issue(alice, via="cli")
    service.revoke([gone.info.id])
    old = service.issue(alice, via="cli", expires_in=60)
    row = hostapp.db.session.get(service.models.Token, old.info.id)
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    hostapp.db.session.commit()
    service.issue(alice, via="cli", kind=KEY)  # the administrator's: not counted
    client = capped.test_client()
    first = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct",
                                                            "scopes": "tokens"})
    assert first.status_code == 200
    second = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"})
    assert second.status_code == 200
    # At the cap, a rotation still works: it replaces a token.
    token_id = first.get_json()["token"].split("_", 1)[1].split(":")[0]
    rotated = client.post(f"/api/tokens/{token_id}/rotate", headers=auth(first.get_json()["token"]))
    assert rotated.status_code == 200, rotated.get_json()
    assert_too_many(client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"}))
    # The rotated token counts while its grace lasts; revoking another makes no room yet,
    # revoking the rotated one (with its rotation family) does.
    second_id = second.get_json()["token"].split("_", 1)[1].split(":")[0]
    manager = auth(rotated.get_json()["token"])
    assert client.delete(f"/api/tokens/{second_id}", headers=manager).status_code == 200
    assert_too_many(client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"}))
    assert client.delete(f"/api/tokens/{token_id}", headers=manager).status_code == 200
    assert client.post("/api/authenticate/userpass",
                       data={"username": "alice", "password": "pw-correct"}).status_code == 200


def test_ldap_login_stops_at_the_cap(make_app: Callable[..., Flask], slapd: Slapd) -> None:  # noqa: F811
    app = make_app(**slapd.config, APITOKENS_LDAP_TIMEOUT=2, APITOKENS_MAX_TOKENS_PER_USER=1)
    client = app.test_client()
    with app.app_context():
        assert client.post("/api/authenticate/ldap", data={"username": "dora", "password": USER_PASSWORD}) \
            .status_code == 200
        response = client.post("/api/authenticate/ldap", data={"username": "dora", "password": USER_PASSWORD})
        assert response.status_code == 409
        assert response.get_json()["error"] == "too_many_tokens" and "at most 1 live" in response.get_json()["message"]
        assert len(token_rows(app)) == 1


def test_provider_exchange_stops_at_the_cap(make_app: Callable[..., Flask]) -> None:
    provider = ProviderServer().start()
    try:
        app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_MAX_TOKENS_PER_USER=1)
        client = app.test_client()
        with app.app_context():
            access_token = provider.token_for(OCTO)
            assert exchange(client, "github", access_token, "octo@example.net").status_code == 200
            response = exchange(client, "github", access_token, "octo@example.net")
            assert response.status_code == 409 and response.get_json()["error"] == "too_many_tokens"
            assert len(token_rows(app)) == 1
    finally:
        provider.stop()


def test_oauth2_code_grant_stops_at_the_cap_and_refresh_rotation_does_not(make_app: Callable[..., Flask],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_MAX_TOKENS_PER_USER=1)
    with app.app_context():
        hostapp.make_user("alice")
    with serve(app) as served, app.app_context():
        client, _ = register()
        session, token = full_flow(served, client)
        # The refresh replaces the access token: allowed at the cap.
        refreshed = session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
        assert refreshed["access_token"].startswith("apo_")
        # A second approval would add one: refused with the cap's JSON error.
        from authlib.integrations.base_client import OAuthError

        # Approved already: the page is asked for again (prompt=consent), and approved.
        again = oauth_session(client, scope="reports:read")
        location, _, verifier = authorize(served, served.login(), again, prompt="consent")
        with pytest.raises(OAuthError) as refused:
            again.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
        assert refused.value.error == "too_many_tokens"
        assert "at most 1 live" in (refused.value.description or "")


# PostgreSQL only: it is where two transactions really run at once (SQLite takes one writer at a time).
@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_concurrent_issues_cannot_both_pass_the_cap(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_MAX_TOKENS_PER_USER=1, APITOKENS_RATE_LIMIT="1000/minute",
                   APITOKENS_ACCOUNT_RATE_LIMIT="1000/minute")
    with app.app_context():
        hostapp.make_user("alice")
    statuses: list[int] = []
    with serve(app) as served:
        barrier = threading.Barrier(8)

        def one() -> None:
            barrier.wait()
            response = requests.post(served.url + "/api/authenticate/userpass",
                                     data={"username": "alice", "password": "pw-correct"}, timeout=30)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(statuses) == [200] + [409] * 7
    with app.app_context():
        assert len(token_rows(app)) == 1


@pytest.mark.parametrize(("key", "value"), [
    ("APITOKENS_MAX_TOKENS_PER_USER", 0), ("APITOKENS_MAX_TOKENS_PER_USER", True),
    ("APITOKENS_MAX_TOKENS_PER_USER", "5"), ("APITOKENS_SECRET_SCANNING_KEYS_URL", "file:///etc/passwd"),
    ("APITOKENS_SECRET_SCANNING_TIMEOUT", 0), ("APITOKENS_SECRET_SCANNING", "yes"),
    ("APITOKENS_REVOKE_ON_PASSWORD_CHANGE", 1), ("APITOKENS_PASSWORD_ATTRIBUTE", "pass word"),
])
def test_bad_settings_fail_at_start_naming_the_key(key: str, value: Any) -> None:
    from flask_apitokens.config import load_settings

    with pytest.raises(RuntimeError, match=f"^{key}: "):
        load_settings({"SECRET_KEY": "a secret key, long enough", key: value})
