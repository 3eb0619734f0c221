"""Rate limits on the credential routes: per address, per account, the 429
body and Retry-After, RATELIMIT_ENABLED, Redis shared by two app instances."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_apitokens.ratelimit import BASIC, account_name
from tests import hostapp
from tests.helpers import basic, need_redis, token_rows

USERPASS = "/api/authenticate/userpass"


def attempt(client: Any, username: str = "alice", password: str = "wrong", ip: str = "10.0.0.1",
            path: str = USERPASS) -> Any:
    field = "email" if path == "/api/api_tokens" else "username"
    return client.post(path, json={field: username, "password": password}, environ_base={"REMOTE_ADDR": ip})


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429
    assert response.is_json
    assert response.json["error"] == "rate_limited"
    assert response.json["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 0 <= retry_after <= 60


def test_per_address_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="3/minute", APITOKENS_ACCOUNT_RATE_LIMIT="100/minute")
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        assert [attempt(client, f"user{i}").status_code for i in range(3)] == [401, 401, 401]
        assert_rate_limited(attempt(client, "someone-else"))
        # Shared by every credential route: switching route gains nothing.
        assert_rate_limited(attempt(client, "alice@example.com", "pw-correct", path="/api/api_tokens"))
        assert_rate_limited(client.post("/api/token", environ_base={"REMOTE_ADDR": "10.0.0.1"}))
        # Another address is not affected.
        assert attempt(client, "alice", "pw-correct", ip="10.0.0.2").status_code == 200
        assert len(token_rows(app)) == 1


def test_per_account_limit_across_addresses(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="100/minute", APITOKENS_ACCOUNT_RATE_LIMIT="3/minute")
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        statuses = [attempt(client, name, ip=f"10.0.1.{i}").status_code
                    for i, name in enumerate(["alice", "ALICE", " alice "])]
        assert statuses == [401, 401, 401]
        # The right password from a fresh address is refused too: the account is what is guessed at.
        blocked = attempt(client, "alice", "pw-correct", ip="10.0.9.9")
        assert_rate_limited(blocked)
        assert token_rows(app) == []
        # Form bodies name the account too.
        assert_rate_limited(client.post(USERPASS, data={"username": "alice", "password": "x"},
                                        environ_base={"REMOTE_ADDR": "10.0.9.8"}))
        # Other accounts go on.
        assert attempt(client, "bob", ip="10.0.9.9").status_code == 401


def test_account_limit_is_shared_by_routes_that_name_it_differently(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="100/minute", APITOKENS_ACCOUNT_RATE_LIMIT="2/minute")
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        assert attempt(client, "alice@example.com", path="/api/api_tokens").status_code == 401
        assert attempt(client, "alice@example.com", ip="10.0.0.7").status_code == 401  # username = the email
        assert_rate_limited(attempt(client, "alice@example.com", "pw-correct", path="/api/api_tokens"))


def test_requests_naming_no_account_count_only_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="100/minute", APITOKENS_ACCOUNT_RATE_LIMIT="1/minute")
    with app.app_context():
        client = app.test_client()
        for _ in range(5):
            assert client.post(USERPASS, data=b"{", content_type="application/json").status_code == 400
            assert client.post(USERPASS, json={"password": "x"}).status_code == 400


def test_ratelimit_enabled_false_turns_it_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATELIMIT_ENABLED=False, APITOKENS_RATE_LIMIT="1/minute", APITOKENS_ACCOUNT_RATE_LIMIT="1/minute")
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        assert {attempt(client).status_code for _ in range(20)} == {401}
        assert attempt(client, password="pw-correct").status_code == 200


def test_account_names_come_from_the_named_field_or_basic(app: Flask) -> None:
    with app.test_request_context("/", method="POST", json={"username": "Alice"}):
        assert account_name("username") is not None
        assert account_name("email") is None
        assert account_name(None) is None
        assert "alice" not in (account_name("username") or "").lower()  # stored as a digest
    with app.test_request_context("/", method="POST", json={"username": " alice"}):
        first = account_name("username")
    with app.test_request_context("/", method="POST", json={"username": "ALICE"}):
        assert account_name("username") == first
    with app.test_request_context("/", headers=basic("alice", "pw")):
        assert account_name(BASIC) == first
    with app.test_request_context("/", headers={"Authorization": "token abc"}):
        assert account_name(BASIC) is None
    with app.test_request_context("/", method="POST", json={"username": ["alice"]}):
        assert account_name("username") is None


def test_the_hosts_own_limiter_is_left_alone(make_app: Callable[..., Flask]) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    app = make_app(APITOKENS_RATE_LIMIT="100/minute")
    host_limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")

    @app.get("/host-page")
    @host_limiter.limit("1/minute")
    def host_page() -> str:
        return "hello"

    with app.app_context():
        client = app.test_client()
        assert client.get("/host-page").status_code == 200
        second = client.get("/host-page")
        assert second.status_code == 429
        assert not second.is_json  # the host's own 429 page, not ours
        assert attempt(client).status_code == 401


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield need_redis("for the shared rate-limit test")


def test_redis_storage_is_shared_by_two_app_instances(make_app: Callable[..., Flask], redis_url: str) -> None:
    # A fresh key prefix: the test counts only its own hits and never flushes the database.
    config = {"RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": f"apitokens-test-{uuid.uuid4().hex}",
              "APITOKENS_RATE_LIMIT": "4/minute", "APITOKENS_ACCOUNT_RATE_LIMIT": "100/minute"}
    first, second = make_app(**config), make_app(**config)
    with first.app_context():
        hostapp.make_user("alice")
    clients = [first.test_client(), second.test_client()]
    statuses = []
    for i in range(6):
        app = (first, second)[i % 2]
        with app.app_context():
            statuses.append(attempt(clients[i % 2], f"user{i}").status_code)
    assert statuses == [401, 401, 401, 401, 429, 429]
    # A process-local store would not have seen the other instance's hits.
    local = make_app(**{**config, "RATELIMIT_STORAGE_URI": "memory://"})
    with local.app_context():
        assert attempt(local.test_client(), "user9").status_code == 401


def test_an_unreachable_limiter_store_fails_closed_with_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")  # the discard port: nothing listens
    with app.app_context():
        hostapp.make_user("alice")
        response = attempt(app.test_client(), "alice", "pw-correct")
        assert response.status_code == 503
        assert response.json["error"] == "rate_limit_unavailable"
        assert token_rows(app) == []  # the route was not run unlimited
        # Routes without a credential do not depend on the limiter's store.
        assert app.test_client().get("/api/openapi.json").status_code == 200


def test_the_hosts_default_limits_are_not_counted_again(make_app: Callable[..., Flask]) -> None:
    # The host's RATELIMIT_DEFAULT is for the host's own Limiter; this extension's
    # Limiter must not apply it to every route a second time (nor run on them at all).
    app = make_app(RATELIMIT_DEFAULT="2/minute", APITOKENS_RATE_LIMIT="3/minute",
                   APITOKENS_ACCOUNT_RATE_LIMIT="100/minute")

    @app.get("/host-open")
    def host_open() -> str:
        return "hello"

    with app.app_context():
        client = app.test_client()
        opened = [client.get("/host-open") for _ in range(5)]
        assert [response.status_code for response in opened] == [200] * 5
        assert not any(name.startswith("X-RateLimit") for name, _ in opened[-1].headers)
        # The credential routes keep their own limit, headers included.
        first = attempt(client, "user0")
        assert first.status_code == 401
        assert "X-RateLimit-Remaining" in first.headers
        assert [attempt(client, f"user{i}").status_code for i in (1, 2)] == [401, 401]
        assert_rate_limited(attempt(client, "user3"))


def test_host_requests_run_no_hook_of_the_extension(make_app: Callable[..., Flask]) -> None:
    # Once the first request has run, nothing of the extension (nor of its
    # Limiter) is left in the application-wide request hooks: a route the
    # extension does not protect costs what it would without it (bench/).
    app = make_app()
    with app.app_context():
        assert app.test_client().get("/api/openapi.json").status_code == 200

    def foreign(hooks: dict[Any, list[Any]]) -> list[Any]:
        found = []
        for hook in hooks.get(None, []):
            module = getattr(hook, "__module__", None) or getattr(getattr(hook, "func", None), "__module__", "")
            if module.startswith(("flask_apitokens", "flask_limiter")):
                found.append(hook)
        return found

    assert foreign(app.before_request_funcs) == []
    assert foreign(app.after_request_funcs) == []
    assert foreign(app.teardown_request_funcs) == []


# Every route that takes a credential, with a request each would refuse or fail
# on this app: no LDAP directory or provider answers, the Basic password is wrong.
CREDENTIAL_ROUTES = {
    "ldap": ("POST", "/api/authenticate/ldap", {"json": {"username": "alice", "password": "x"}}),
    "provider": ("POST", "/api/authenticate/github", {"json": {"access_token": "gho_x"}}),
    "user-token": ("POST", "/api/user-token", {"headers": basic("alice", "wrong")}),
    "user-token info": ("GET", "/api/user-token?token=x", {}),
    "oauth2 token": ("POST", "/oauth/token", {"data": {"grant_type": "authorization_code", "code": "x",
                                                      "client_id": "nobody"}}),
    "session": ("POST", "/api/token", {}),
    "exchange": ("POST", "/api/api_tokens", {"json": {"email": "alice@example.com", "password": "x"}}),
}
# Nothing listens on the discard port: the LDAP directory and the provider fail fast.
UNREACHABLE = {"LDAP_HOST": "127.0.0.1", "LDAP_PORT": 9, "LDAP_BASE_DN": "dc=example,dc=org",
               "APITOKENS_OAUTH_PROVIDERS": {"github": {"api_base_url": "http://127.0.0.1:9/"}}}


@pytest.mark.parametrize("route", list(CREDENTIAL_ROUTES))
def test_every_credential_route_is_limited_per_address(make_app: Callable[..., Flask], route: str) -> None:
    app = make_app(**UNREACHABLE, APITOKENS_RATE_LIMIT="2/minute", APITOKENS_ACCOUNT_RATE_LIMIT="100/minute")
    method, path, options = CREDENTIAL_ROUTES[route]
    with app.app_context():
        client = app.test_client()
        answers = [client.open(path, method=method, environ_base={"REMOTE_ADDR": "10.0.3.1"}, **options)
                   for _ in range(3)]
        first_two = [answer.status_code for answer in answers[:2]]
        assert 429 not in first_two and 500 not in first_two, first_two  # the route's own answer
        assert_rate_limited(answers[2])
