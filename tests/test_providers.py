"""``POST /api/authenticate/<provider>`` against a real provider server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Config, Flask
from werkzeug.serving import make_server

from flask_apitokens import signals
from flask_apitokens.providers import load_providers
from tests import hostapp
from tests.helpers import auth, need, token_rows
from tests.provider_server import OCTO, Account, ProviderServer, closed_port, exchange, providers_config

DAY = 86400
BOB = Account(1002, "bob-gh", [("bob@example.net", True)])
UNVERIFIED = Account(1003, "newbie", [("newbie@example.net", False)])


@pytest.fixture
def provider(provider_server: ProviderServer) -> Iterator[ProviderServer]:
    provider_server.reset()
    yield provider_server
    provider_server.reset()


@pytest.fixture
def papp(make_app: Callable[..., Flask], provider: ProviderServer) -> Iterator[Flask]:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_TIMEOUT=2)
    with app.app_context():
        yield app


@pytest.fixture
def pclient(papp: Flask) -> Any:
    return papp.test_client()


def users() -> list[hostapp.User]:
    hostapp.db.session.expire_all()
    return list(hostapp.db.session.execute(sa.select(hostapp.User).order_by(hostapp.User.id)).scalars())


def links(app: Flask) -> list[Any]:
    Identity = app.extensions["apitokens"].models.Identity
    hostapp.db.session.expire_all()
    return list(hostapp.db.session.execute(sa.select(Identity).order_by(Identity.id)).scalars())


def assert_nothing_written(app: Flask, users_before: int = 0) -> None:
    assert token_rows(app) == []
    assert links(app) == []
    assert len(users()) == users_before


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- good paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_name", "subject", "user_path", "email"),
    [
        ("github", "1001", "/github/user", "octo@example.net"),
        ("github", "1001", "/github/user", "OCTO@work.example"),  # another verified address, other case
        ("ghe", "1001", "/ghe/api/v3/user", "octo@example.net"),
        ("gitlab", "1001", "/gitlab/api/v4/user", "octo@example.net"),  # primary, confirmed
        ("gitlab", "1001", "/gitlab/api/v4/user", "octo@work.example"),  # secondary, confirmed
        ("google", "oidc-1001", "/oidc/userinfo", "octo@example.net"),
        ("corp", "oidc-1001", "/oidc/userinfo", "octo@example.net"),
    ],
)
def test_exchange_creates_and_links_a_user(papp: Flask, pclient: Any, provider: ProviderServer,
                                           provider_name: str, subject: str, user_path: str, email: str) -> None:
    access_token = provider.token_for(OCTO)
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    response = exchange(pclient, provider_name, access_token, email)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"token", "expiresOn"}
    assert body["token"].startswith("apt_")
    assert response.headers["Cache-Control"] == "no-store"
    # The provider was asked, with the access token as a Bearer token.
    assert (user_path, f"Bearer {access_token}") in provider.calls

    (user,) = users()
    assert user.username == "octocat"
    assert user.email.casefold() == email.casefold()
    assert user.password_hash is None
    (link,) = links(papp)
    assert (link.provider, link.subject, link.user_id) == (provider_name, subject, user.id)
    (row,) = token_rows(papp)
    assert (row.user_id, row.via, row.kind) == (user.id, provider_name, "token")
    lifetime = (row.expires_at - started).total_seconds()
    assert 30 * DAY - 5 <= lifetime <= 30 * DAY + 5  # APITOKENS_PROVIDER_EXPIRES_IN

    me = pclient.get("/api/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.get_json()["username"] == "octocat"
    assert me.get_json()["token"]["via"] == provider_name


def test_discovery_document_is_read_once(pclient: Any, provider: ProviderServer) -> None:
    for _ in range(2):
        response = exchange(pclient, "corp", provider.token_for(OCTO), "octo@example.net")
        assert response.status_code == 200
    assert provider.paths().count("/oidc/.well-known/openid-configuration") == 1
    assert provider.paths().count("/oidc/userinfo") == 2
    # Discovery needs no token: the access token goes only to the userinfo endpoint.
    assert ("/oidc/.well-known/openid-configuration", None) in provider.calls


def test_second_exchange_reuses_the_user(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    first = exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net")
    # A new access token of the same account, claiming another of its verified addresses.
    second = exchange(pclient, "github", provider.token_for(OCTO), "octo@work.example")
    assert first.status_code == second.status_code == 200
    assert first.get_json()["token"] != second.get_json()["token"]
    (user,) = users()
    (link,) = links(papp)
    assert link.user_id == user.id
    assert link.email == "octo@work.example"
    assert {row.user_id for row in token_rows(papp)} == {user.id}
    assert len(token_rows(papp)) == 2


def test_concurrent_first_exchanges_make_one_user(papp: Flask, provider: ProviderServer) -> None:
    """Several first exchanges of one account at once, over real HTTP: one user, one link."""
    server = make_server("127.0.0.1", 0, papp, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    provider.delay, provider.delay_path = 0.2, "/github/user/emails"  # let the requests pile up
    url = f"http://127.0.0.1:{server.server_port}/api/authenticate/github"
    statuses: list[int] = []

    def one() -> None:
        body = {"email": "octo@example.net", "info": {"accessToken": provider.token_for(OCTO)}}
        statuses.append(requests.post(url, json=body, timeout=20).status_code)

    try:
        workers = [threading.Thread(target=one) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(statuses) == 4 and set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    (user,) = users()
    (link,) = links(papp)
    assert link.user_id == user.id
    assert {row.user_id for row in token_rows(papp)} == {user.id}
    assert len(token_rows(papp)) == statuses.count(200)


def test_refusals_send_the_signal(pclient: Any, provider: ProviderServer) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    with signals.authentication_failed.connected_to(receiver):
        exchange(pclient, "github", "gho_forged_secret", "octo@example.net")
        exchange(pclient, "gitlab", provider.token_for(UNVERIFIED), "newbie@example.net")
    assert seen == [
        {"method": "github", "reason": "invalid_provider_token", "login": "octo@example.net"},
        {"method": "gitlab", "reason": "email_not_verified", "login": "newbie@example.net"},
    ]


def test_same_account_at_two_providers_gives_two_links(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    # GitHub's id 1001 and GitHub Enterprise's id 1001 are different people.
    assert exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net").status_code == 200
    response = exchange(pclient, "ghe", provider.token_for(OCTO), "octo@example.net")
    assert_error(response, 409, "account_conflict")  # same email, link-by-email off
    assert [(link.provider, link.subject) for link in links(papp)] == [("github", "1001")]


def test_name_scopes_and_expiry_from_the_body(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    response = exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net",
                        name="laptop", scopes=["reports:read"], expires_in=3600)
    assert response.status_code == 200
    (row,) = token_rows(papp)
    assert (row.name, row.scopes) == ("laptop", "reports:read")
    assert abs((row.expires_at - row.created_at).total_seconds() - 3600) < 2
    reports = pclient.get("/reports", headers=auth(response.get_json()["token"]))
    assert reports.status_code == 200 and reports.get_json()["user"] == "octocat"


@pytest.mark.parametrize(("setting", "lifetime"), [(7200, 7200), (None, 365 * DAY)])  # None: up to the cap
def test_provider_expiry_setting(make_app: Callable[..., Flask], provider: ProviderServer, setting: int | None,
                                 lifetime: int) -> None:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_EXPIRES_IN=setting)
    with app.app_context():
        response = exchange(app.test_client(), "gitlab", provider.token_for(OCTO), "octo@example.net")
        assert response.status_code == 200
        (row,) = token_rows(app)
        assert abs((row.expires_at - row.created_at).total_seconds() - lifetime) < 2


def test_username_taken_gets_a_suffix(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    hostapp.make_user("octocat", email="someone-else@example.com")
    response = exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net")
    assert response.status_code == 200
    new = users()[-1]
    assert (new.username, new.email) == ("octocat-github", "octo@example.net")
    assert links(papp)[0].user_id == new.id


def test_settings_from_the_environment(make_app: Callable[..., Flask], provider: ProviderServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_APITOKENS_OAUTH_PROVIDERS", f'{{"github": {{"api_base_url": "{provider.url}github/"}}}}')
    monkeypatch.setenv("FLASK_APITOKENS_PROVIDER_TIMEOUT", "1.5")
    config = Config(".")
    config.from_prefixed_env()
    app = make_app(**config)
    with app.app_context():
        response = exchange(app.test_client(), "github", provider.token_for(OCTO), "octo@example.net")
        assert response.status_code == 200
        assert_error(exchange(app.test_client(), "gitlab", "x", "octo@example.net"), 404, "unknown_provider")


# -- link by email ------------------------------------------------------------------------------


def test_existing_email_is_not_taken_over_without_link_by_email(papp: Flask, pclient: Any,
                                                                 provider: ProviderServer) -> None:
    hostapp.make_user("octo-local", email="octo@example.net")
    response = exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net")
    assert_error(response, 409, "account_conflict")
    assert_nothing_written(papp, users_before=1)


def test_link_by_email_links_the_existing_user(make_app: Callable[..., Flask], provider: ProviderServer) -> None:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_LINK_BY_EMAIL=True)
    with app.app_context():
        local = hostapp.make_user("octo-local", email="Octo@Example.net")
        client = app.test_client()
        for provider_name in ("github", "github", "google"):
            response = exchange(client, provider_name, provider.token_for(OCTO), "octo@example.net")
            assert response.status_code == 200, response.get_json()
        (user,) = users()
        assert user.id == local.id and user.username == "octo-local"
        assert [(link.provider, link.user_id) for link in links(app)] == [("github", local.id), ("google", local.id)]
        assert {row.user_id for row in token_rows(app)} == {local.id}


def test_link_by_email_never_uses_an_unverified_address(make_app: Callable[..., Flask],
                                                        provider: ProviderServer) -> None:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_LINK_BY_EMAIL=True)
    with app.app_context():
        hostapp.make_user("old-octo", email="octo@old.example")
        response = exchange(app.test_client(), "github", provider.token_for(OCTO), "octo@old.example")
        assert_error(response, 401, "email_not_verified")
        assert_nothing_written(app, users_before=1)


# -- refusals -----------------------------------------------------------------------------------


def test_unknown_provider(pclient: Any, provider: ProviderServer) -> None:
    for name in ("facebook", "oidc", "userpass-x", "%00"):
        body = assert_error(exchange(pclient, name, "gho_x", "a@example.net"), 404, "unknown_provider")
        assert "provider" in body["message"]
    assert provider.calls == []


def test_no_providers_configured(app: Flask, client: Any) -> None:
    # No provider configured: the route is not there at all (issue 15: only what is on is routed).
    assert_error(exchange(client, "github", "gho_x", "a@example.net"), 404, "not_found")
    assert not any(rule.endpoint == "apitokens_api.provider" for rule in app.url_map.iter_rules())


def test_switched_off_methods_stay_plain_404s(make_app: Callable[..., Flask]) -> None:
    # /authenticate/ldap (no LDAP_HOST) and /authenticate/userpass (switched off) are not providers.
    app = make_app(APITOKENS_USERPASS=False)
    with app.app_context():
        for name in ("ldap", "userpass"):
            response = app.test_client().post(f"/api/authenticate/{name}", json={"username": "a", "password": "b"})
            assert_error(response, 404, "not_found")


def test_documented_curl_body_is_refused_as_not_json(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    # The body of the product document's own example:
    #   curl -i --header "Content-Type: application/json" \
    #     --data "{'email':'<your email>', 'info': { 'accessToken': '<your OAuth token>' }}" \
    #     <host>/api/authenticate/github
    data = "{'email':'<your email>', 'info': { 'accessToken': '<your OAuth token>' }}"
    response = pclient.post("/api/authenticate/github", data=data, headers={"Content-Type": "application/json"})
    body = assert_error(response, 400, "invalid_json")
    assert "not valid JSON" in body["message"] and "double quotes" in body["message"]
    assert provider.calls == []
    assert_nothing_written(papp)


def test_documented_curl_command_over_http(papp: Flask, provider: ProviderServer) -> None:
    """The document's curl command, run as written against the app served on 127.0.0.1."""
    curl = shutil.which("curl")
    if curl is None:
        need("install curl to run the document's own example")
    server = make_server("127.0.0.1", 0, papp, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host = f"http://127.0.0.1:{server.server_port}"
    try:
        def run(data: str) -> tuple[str, dict[str, Any]]:
            out = subprocess.run(
                [curl, "-sS", "-i", "--header", "Content-Type: application/json", "--data", data,
                 f"{host}/api/authenticate/github"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout
            head, _, body = out.replace("\r\n", "\n").partition("\n\n")
            return head.split("\n", 1)[0], json.loads(body)

        status, body = run("{'email':'<your email>', 'info': { 'accessToken': '<your OAuth token>' }}")
        assert " 400 " in status and body["error"] == "invalid_json"
        assert "double quotes" in body["message"]
        assert provider.calls == []

        token = provider.token_for(OCTO)
        status, body = run(json.dumps({"email": "octo@example.net", "info": {"accessToken": token}}))
        assert " 200 " in status and body["token"].startswith("apt_")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(token_rows(papp)) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"info": {"accessToken": "gho_abc"}}, "missing_field"),
        ({"email": "octo@example.net"}, "missing_field"),
        ({"email": "octo@example.net", "info": {}}, "missing_field"),
        ({"email": "octo@example.net", "info": "gho_abc"}, "invalid_field"),
        ({"email": "octo@example.net", "info": ["gho_abc"]}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": 12345}}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho abc"}}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho\r\nX-Evil: 1"}}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "é" * 10}}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "a" * 5000}}, "invalid_field"),
        ({"email": ["octo@example.net"], "info": {"accessToken": "gho_abc"}}, "invalid_field"),
        ({"email": "not an address", "info": {"accessToken": "gho_abc"}}, "invalid_field"),
        ({"email": "a@b\x00.c", "info": {"accessToken": "gho_abc"}}, "invalid_field"),
        ({"email": "x" * 400 + "@example.net", "info": {"accessToken": "gho_abc"}}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho_abc"}, "expires_in": -1}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho_abc"}, "name": 7}, "invalid_field"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho_abc"}, "scopes": ["nope"]}, "invalid_scope"),
        ({"email": "octo@example.net", "info": {"accessToken": "gho_abc"}, "scopes": 3}, "invalid_field"),
    ],
)
def test_bad_fields(papp: Flask, pclient: Any, provider: ProviderServer, body: dict[str, Any], code: str) -> None:
    assert_error(pclient.post("/api/authenticate/github", json=body), 400, code)
    assert provider.calls == []  # refused before the provider is asked
    assert_nothing_written(papp)


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ('["octo@example.net"]', "application/json", 400),
        ("null", "application/json", 400),
        ("email=octo%40example.net&info=x", "application/x-www-form-urlencoded", 415),
        ('{"email": "octo@example.net"}', "text/plain", 415),
        (b'{"email": "\xff"}', "application/json", 400),
    ],
)
def test_bodies_that_are_not_a_json_object(pclient: Any, provider: ProviderServer, data: Any, content_type: str,
                                           status: int) -> None:
    response = pclient.post("/api/authenticate/github", data=data, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert set(response.get_json()) == {"error", "message"}
    assert provider.calls == []


def test_get_is_not_allowed(pclient: Any) -> None:
    assert pclient.get("/api/authenticate/github").status_code == 405


@pytest.mark.parametrize("provider_name", ["github", "gitlab", "google", "corp"])
def test_token_the_provider_does_not_know(papp: Flask, pclient: Any, provider: ProviderServer,
                                          provider_name: str) -> None:
    provider.token_for(OCTO)
    response = exchange(pclient, provider_name, "gho_forged", "octo@example.net")
    body = assert_error(response, 401, "invalid_provider_token")
    assert provider_name in body["message"]
    assert "WWW-Authenticate" in response.headers
    assert_nothing_written(papp)


@pytest.mark.parametrize("provider_name", ["github", "gitlab", "google", "corp"])
def test_claimed_email_not_verified(papp: Flask, pclient: Any, provider: ProviderServer, provider_name: str) -> None:
    response = exchange(pclient, provider_name, provider.token_for(UNVERIFIED), "newbie@example.net")
    body = assert_error(response, 401, "email_not_verified")
    assert "newbie@example.net" in body["message"]
    assert_nothing_written(papp)


@pytest.mark.parametrize("provider_name", ["github", "gitlab", "google"])
def test_claimed_email_of_someone_else(papp: Flask, pclient: Any, provider: ProviderServer,
                                       provider_name: str) -> None:
    provider.token_for(BOB)
    # Octo's token, claiming Bob's address: never a token for Bob.
    response = exchange(pclient, provider_name, provider.token_for(OCTO), "bob@example.net")
    assert_error(response, 401, "email_not_verified")
    assert_nothing_written(papp)


def test_someone_elses_email_does_not_reach_their_linked_user(papp: Flask, pclient: Any,
                                                              provider: ProviderServer) -> None:
    assert exchange(pclient, "github", provider.token_for(BOB), "bob@example.net").status_code == 200
    response = exchange(pclient, "github", provider.token_for(OCTO), "bob@example.net")
    assert_error(response, 401, "email_not_verified")
    assert len(users()) == 1 and len(token_rows(papp)) == 1


def test_github_token_without_email_scope(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    response = exchange(pclient, "github", provider.token_for(OCTO, emails_scope=False), "octo@example.net")
    assert_error(response, 401, "email_not_verified")
    assert "/github/user/emails" in provider.paths()
    assert_nothing_written(papp)


def test_gitlab_token_without_email_scope_still_has_the_primary(papp: Flask, pclient: Any,
                                                                provider: ProviderServer) -> None:
    token = provider.token_for(OCTO, emails_scope=False)
    assert exchange(pclient, "gitlab", token, "octo@example.net").status_code == 200
    assert_error(exchange(pclient, "gitlab", token, "octo@work.example"), 401, "email_not_verified")


def test_disabled_linked_user_is_refused(papp: Flask, pclient: Any, provider: ProviderServer) -> None:
    assert exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net").status_code == 200
    (user,) = users()
    user.active = False
    hostapp.db.session.commit()
    assert_error(exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net"), 401, "account_disabled")
    assert len(token_rows(papp)) == 1


# -- a provider that fails ------------------------------------------------------------------------


def test_slow_provider_gives_504_within_the_timeout(make_app: Callable[..., Flask], provider: ProviderServer) -> None:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_TIMEOUT=0.5)
    provider.delay = 5
    with app.app_context():
        for provider_name in ("github", "corp"):
            started = time.monotonic()
            response = exchange(app.test_client(), provider_name, provider.token_for(OCTO), "octo@example.net")
            elapsed = time.monotonic() - started
            body = assert_error(response, 504, "provider_timeout")
            assert provider_name in body["message"]
            assert 0.45 <= elapsed < 0.5 + 0.75, elapsed
        assert_nothing_written(app)


def test_slow_email_query_gives_504(make_app: Callable[..., Flask], provider: ProviderServer) -> None:
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_TIMEOUT=0.5)
    provider.delay, provider.delay_path = 5, "/github/user/emails"
    with app.app_context():
        started = time.monotonic()
        assert_error(exchange(app.test_client(), "github", provider.token_for(OCTO), "octo@example.net"),
                     504, "provider_timeout")
        assert time.monotonic() - started < 0.5 * 2 + 0.75  # two calls, each within its timeout
        assert_nothing_written(app)


@pytest.mark.parametrize("fault", ["trickle", "trickle-length"])
def test_body_sent_too_slowly_gives_504(make_app: Callable[..., Flask], provider: ProviderServer, fault: str) -> None:
    # Each byte comes well within the timeout; the whole answer does not.
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url), APITOKENS_PROVIDER_TIMEOUT=0.5)
    provider.fault = fault
    with app.app_context():
        started = time.monotonic()
        assert_error(exchange(app.test_client(), "google", provider.token_for(OCTO), "octo@example.net"),
                     504, "provider_timeout")
        assert time.monotonic() - started < 0.5 + 0.75
        assert_nothing_written(app)


def test_stopped_provider_gives_502(make_app: Callable[..., Flask]) -> None:
    stopped = ProviderServer().start()
    url = stopped.url
    token = stopped.token_for(OCTO)
    stopped.stop()
    app = make_app(APITOKENS_OAUTH_PROVIDERS={**providers_config(url),
                                              "closed": {"kind": "gitlab",
                                                         "api_base_url": f"http://127.0.0.1:{closed_port()}/"}},
                   APITOKENS_PROVIDER_TIMEOUT=2)
    with app.app_context():
        for provider_name in ("github", "gitlab", "google", "corp", "closed"):
            started = time.monotonic()
            response = exchange(app.test_client(), provider_name, token, "octo@example.net")
            assert_error(response, 502, "provider_unavailable")
            assert time.monotonic() - started < 2
        assert_nothing_written(app)


@pytest.mark.parametrize("fault", ["html", "500", "shape", "no-id", "huge", "redirect", "ratelimit", "empty"])
@pytest.mark.parametrize("provider_name", ["github", "gitlab", "corp"])
def test_provider_answering_garbage_gives_502(papp: Flask, pclient: Any, provider: ProviderServer, fault: str,
                                              provider_name: str) -> None:
    provider.fault = fault
    response = exchange(pclient, provider_name, provider.token_for(OCTO), "octo@example.net")
    assert_error(response, 502, "provider_error")
    assert_nothing_written(papp)


@pytest.mark.parametrize("fault", ["html", "500", "shape", "no-id", "huge"])
def test_garbage_from_the_email_query_gives_502(papp: Flask, pclient: Any, provider: ProviderServer,
                                                fault: str) -> None:
    provider.fault, provider.fault_path = fault, "/github/user/emails"
    assert_error(exchange(pclient, "github", provider.token_for(OCTO), "octo@example.net"), 502, "provider_error")
    assert_nothing_written(papp)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": 1001, "email": "octo@example.net", "email_verified": True},  # sub must be a string
        {"email": "octo@example.net", "email_verified": True},
        {"sub": "x", "email": ["octo@example.net"], "email_verified": True},
    ],
)
def test_userinfo_with_wrong_claims_gives_502(make_app: Callable[..., Flask], provider: ProviderServer,
                                              provider_server: ProviderServer, claims: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProviderServer, "_userinfo", staticmethod(lambda account: claims))
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url))
    with app.app_context():
        assert_error(exchange(app.test_client(), "google", provider.token_for(OCTO), "octo@example.net"),
                     502, "provider_error")
        assert_nothing_written(app)


@pytest.mark.parametrize(("verified", "status"), [("true", 200), ("false", 401), (None, 401), (1, 401)])
def test_userinfo_email_verified_must_be_true(make_app: Callable[..., Flask], provider: ProviderServer,
                                              verified: Any, status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = {"sub": "s-1", "email": "octo@example.net", "email_verified": verified}
    monkeypatch.setattr(ProviderServer, "_userinfo", staticmethod(lambda account: claims))
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url))
    with app.app_context():
        response = exchange(app.test_client(), "google", provider.token_for(OCTO), "octo@example.net")
        assert response.status_code == status


def test_discovery_without_userinfo_endpoint_gives_502(make_app: Callable[..., Flask], provider: ProviderServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProviderServer, "_discovery", lambda self: {"issuer": self.url + "oidc"})
    app = make_app(APITOKENS_OAUTH_PROVIDERS=providers_config(provider.url))
    with app.app_context():
        assert_error(exchange(app.test_client(), "corp", provider.token_for(OCTO), "octo@example.net"),
                     502, "provider_error")
    assert "/oidc/userinfo" not in provider.paths()


def test_access_token_is_never_logged(papp: Flask, pclient: Any, provider: ProviderServer,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = provider.token_for(OCTO)
    assert exchange(pclient, "github", good, "octo@example.net").status_code == 200
    assert exchange(pclient, "github", "gho_forged_secret", "octo@example.net").status_code == 401
    provider.fault = "500"
    assert exchange(pclient, "gitlab", good, "octo@example.net").status_code == 502
    assert caplog.records  # the calls were logged (by urllib3 and us) ...
    assert good not in caplog.text and "gho_forged_secret" not in caplog.text  # ... without the tokens


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("providers", "complaint"),
    [
        ({"github": "https://api.github.com/"}, "expected a dict"),
        ({"github": {"api_base_url": "ftp://example.com/"}}, "api_base_url must be an http(s) URL"),
        ({"github": {"api_base_url": 42}}, "api_base_url must be an http(s) URL"),
        ({"ghe": {"kind": "gihub", "api_base_url": "https://ghe.example.com/api/v3/"}}, "unknown kind"),
        ({"corp": {}}, "set 'kind'"),
        ({"corp": {"kind": "oidc"}}, "needs 'server_metadata_url' or 'userinfo_endpoint'"),
        ({"corp": {"server_metadata_url": "not a url"}}, "server_metadata_url must be"),
        ({"github": {"api_base_uri": "https://api.github.com/"}}, "unknown key 'api_base_uri'"),
        ({"github": {"server_metadata_url": "https://example.com/.well-known/openid-configuration"}},
         "for OpenID Connect providers"),
        ({"userpass": {"kind": "github"}}, "another login method"),
        ({"bad name": {"kind": "github"}}, "provider name"),
        ({"x" * 33: {"kind": "github"}}, "provider name"),
    ],
)
def test_bad_provider_settings_raise_at_startup(tmp_path: Any, providers: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RuntimeError) as raised:
        hostapp.create_app(f"sqlite:///{tmp_path / 'db.sqlite3'}", APITOKENS_OAUTH_PROVIDERS=providers)
    message = str(raised.value)
    assert message.startswith("APITOKENS_OAUTH_PROVIDERS[")
    assert repr(next(iter(providers))) in message
    assert complaint in message


def test_settings_not_a_dict(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError, match="APITOKENS_OAUTH_PROVIDERS"):
        hostapp.create_app(f"sqlite:///{tmp_path / 'db.sqlite3'}", APITOKENS_OAUTH_PROVIDERS=["github"])


def test_kind_defaults_and_aliases() -> None:
    providers = load_providers({
        "github": {},
        "gitlab": {},
        "google": {},
        "ghe": {"kind": "github", "api_base_url": "https://ghe.example.com/api/v3", "client_id": "app",
                "client_secret": "s"},
        "selfhosted": {"kind": "gitlab", "api_base_url": "https://git.example.com/gitlab/"},
        "gl-api": {"kind": "gitlab", "api_base_url": "https://git.example.com/api/v4/"},
        "keycloak": {"server_metadata_url": "https://sso.example.com/realms/x/.well-known/openid-configuration"},
        "google-discovery": {"kind": "google",
                             "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"},
    })
    assert providers["github"].api_base_url == "https://api.github.com/"
    assert providers["gitlab"].api_base_url == "https://gitlab.com/api/v4/"
    assert providers["google"].userinfo_endpoint == "https://openidconnect.googleapis.com/v1/userinfo"
    assert (providers["ghe"].kind, providers["ghe"].api_base_url) == ("github", "https://ghe.example.com/api/v3/")
    assert providers["ghe"].client == ("app", "s") and providers["github"].client_id is None  # checked / unchecked
    assert providers["selfhosted"].api_base_url == "https://git.example.com/gitlab/api/v4/"
    assert providers["gl-api"].api_base_url == "https://git.example.com/api/v4/"
    assert (providers["keycloak"].kind, providers["keycloak"].userinfo_endpoint) == ("oidc", None)
    assert providers["google-discovery"].userinfo_endpoint is None
    assert providers["google-discovery"].server_metadata_url.startswith("https://accounts.google.com/")
