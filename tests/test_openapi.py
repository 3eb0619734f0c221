"""The OpenAPI document at /api/openapi.json: it names every route the app
serves under the API prefix and every JSON route of the OAuth2 server, with
their methods, and real responses match it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask

from flask_apitokens.oauth2 import clients
from flask_apitokens.openapi_document import openapi_path
from tests import hostapp
from tests.helpers import auth, basic, login, need_module
from tests.oauth2_server import REDIRECT_URI, consent_form
from tests.openapi_check import check, document

#: The OAuth2 server's JSON routes; /oauth/authorize (HTML and redirects) is left out on purpose.
OAUTH2_JSON_PATHS = ("/oauth/token", "/oauth/revoke", "/oauth/introspect", "/.well-known/oauth-authorization-server")


def api_rules(app: Flask) -> set[tuple[str, str]]:
    prefix = app.extensions["apitokens"].settings["URL_PREFIX"]
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix + "/"):
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    found.add((openapi_path(rule.rule), method.lower()))
    return found


def documented(doc: dict[str, Any], prefix: str | None = None) -> set[tuple[str, str]]:
    """Documented (path, method) pairs; with ``prefix``, only those under it."""
    return {(path, method) for path, item in doc["paths"].items() for method in item
            if prefix is None or path.startswith(prefix + "/")}


def oauth2_answered_methods(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of the OAuth2 JSON routes, for each method they answer with
    something else than 405 (they are routed for every method, to answer a JSON 405)."""
    oauth2_rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("apitokens_oauth2.")}
    assert oauth2_rules == {*OAUTH2_JSON_PATHS, "/oauth/authorize"}
    client = app.test_client()
    return {(path, method.lower()) for path in OAUTH2_JSON_PATHS for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if client.open(path, method=method).status_code != 405}


def test_every_api_rule_is_documented_with_its_methods(app: Flask, client: Any) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    rules = api_rules(app)
    assert ("/api/authenticate/userpass", "post") in rules
    assert rules == documented(doc, "/api")


def test_every_oauth2_json_route_is_documented_with_its_methods(app: Flask, client: Any) -> None:
    doc = document(client)
    answered = oauth2_answered_methods(app)
    assert ("/oauth/token", "post") in answered and ("/oauth/token", "get") not in answered
    assert answered == documented(doc) - documented(doc, "/api")
    assert "/oauth/authorize" not in doc["paths"]
    (tag,) = [tag for tag in doc["tags"] if tag["name"] == "oauth2"]
    assert "/oauth/authorize" in tag["description"]
    # OPTIONS advertises what the document says, not every routed method.
    assert client.options("/oauth/token").headers["Allow"] == "POST, OPTIONS"
    assert client.options("/.well-known/oauth-authorization-server").headers["Allow"] == "GET, HEAD, OPTIONS"


def test_a_route_switched_off_leaves_the_document(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_PASSWORD_EXCHANGE=False, APITOKENS_USERPASS=False)
    with app.app_context():
        doc = document(app.test_client())
        assert "/api/api_tokens" not in doc["paths"]
        assert "/api/authenticate/userpass" not in doc["paths"]
        assert api_rules(app) == documented(doc, "/api")
    app = make_app(APITOKENS_OAUTH2_SERVER=False)
    with app.app_context():
        doc = document(app.test_client())
        assert not any(path.startswith(("/oauth/", "/.well-known/")) for path in doc["paths"])
        assert "tags" not in doc
        assert api_rules(app) == documented(doc)


#: The provider route is only routed when a provider is configured (this one is never called).
PROVIDERS = {"github": {"api_base_url": "http://127.0.0.1:9/"}}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app(APITOKENS_OAUTH_PROVIDERS=PROVIDERS)
    with application.app_context():
        yield application


def test_the_document_follows_the_url_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_URL_PREFIX="/v1")
    with app.app_context():
        doc = document(app.test_client(), "/v1")
        assert "/v1/tokens/{token_id}" in doc["paths"]
        assert "/oauth/token" in doc["paths"]  # absolute paths do not move
        assert api_rules(app) == documented(doc, "/v1")


def test_the_document_is_a_valid_openapi_31_document(client: Any) -> None:
    schemathesis = need_module("schemathesis")
    schema = schemathesis.openapi.from_dict(document(client))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(documented(document(client)))


def test_real_responses_of_every_route_match_the_document(app: Flask, client: Any, user: Any,
                                                         issue: Callable[..., str]) -> None:
    doc = document(client)
    seen: set[tuple[str, str]] = set()

    def call(method: str, path: str, template: str | None = None, **kwargs: Any) -> Any:
        response = client.open(path, method=method.upper(), **kwargs)
        check(doc, template or path, method, response)
        seen.add((template or path, method))
        return response

    good = call("post", "/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"})
    assert good.status_code == 200
    assert call("post", "/api/authenticate/userpass", json={"username": "alice", "password": "no"}).status_code == 401
    assert call("post", "/api/authenticate/userpass", json={"username": "alice"}).status_code == 400
    assert call("post", "/api/authenticate/userpass", data=b"{", content_type="application/json").status_code == 400
    assert call("post", "/api/authenticate/userpass", data=b"x", content_type="text/plain").status_code == 415
    big = b'{"username": "' + b"a" * 70000 + b'"}'
    assert call("post", "/api/authenticate/userpass", data=big, content_type="application/json").status_code == 413
    exchanged = call("post", "/api/api_tokens", json={"email": "alice@example.com", "password": "pw-correct"})
    assert exchanged.status_code == 200
    assert call("post", "/api/api_tokens", data={"email": "a", "password": "b"}).status_code == 415
    assert call("post", "/api/token").status_code == 401
    login(client)
    assert call("post", "/api/token", json={"scopes": ["reports:read"]}).status_code == 200
    assert call("post", "/api/token", headers={"Origin": "https://evil.example"}).status_code == 403
    assert call("get", "/api/me").status_code == 200
    client.delete_cookie("session")

    manager = issue(user, scopes=["tokens"])
    plain = issue(user)
    assert call("get", "/api/me", headers=auth(plain)).status_code == 200
    assert call("get", "/api/me", headers=auth("apt_nonsense")).status_code == 401
    assert call("get", "/api/tokens", headers=auth(plain)).status_code == 403
    listed = call("get", "/api/tokens", headers=auth(manager))
    assert listed.status_code == 200 and listed.json["tokens"]
    victim = listed.json["tokens"][-1]["id"]
    rotate = "/api/tokens/{token_id}/rotate"
    assert call("post", f"/api/tokens/{victim}/rotate", rotate, headers=auth(manager)).status_code == 200
    assert call("post", "/api/tokens/nope/rotate", rotate, headers=auth(manager)).status_code == 404
    one = "/api/tokens/{token_id}"
    assert call("delete", f"/api/tokens/{victim}", one, headers=auth(manager)).status_code == 200
    assert call("delete", "/api/tokens/%00x", one, headers=auth(manager)).status_code == 404
    assert call("delete", "/api/tokens", headers=auth(manager)).status_code == 200
    assert call("delete", "/api/tokens", headers=auth(manager)).status_code == 401
    assert call("get", "/api/openapi.json").status_code == 200

    jwt = call("post", "/api/user-token", headers=basic())
    assert jwt.status_code == 201
    assert call("post", "/api/user-token").status_code == 401
    query = "/api/user-token?token=" + jwt.json["user-token"]
    assert call("get", query, "/api/user-token", headers=basic()).status_code == 200
    assert call("get", "/api/user-token?token=nonsense", "/api/user-token", headers=basic()).status_code == 400
    provider = "/api/authenticate/{provider}"
    body = {"email": "alice@example.com", "info": {"accessToken": "x"}}
    assert call("post", "/api/authenticate/nowhere", provider, json=body).status_code == 404
    assert call("post", "/api/credentials/revoke", json={"credentials": [plain]}).status_code == 202
    assert call("post", "/api/credentials/revoke", json={"credentials": "x"}).status_code == 400
    assert seen == documented(doc, "/api")


def test_rate_limited_response_matches_the_document(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="2/minute")
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        doc = document(client)
        statuses = [client.post("/api/authenticate/userpass", json={"username": "x", "password": "y"})
                    for _ in range(3)]
        assert [r.status_code for r in statuses] == [401, 401, 429]
        check(doc, "/api/authenticate/userpass", "post", statuses[-1])


def test_expires_in_as_an_integral_float_is_taken(client: Any, user: Any) -> None:
    response = client.post("/api/authenticate/userpass",
                           json={"username": "alice", "password": "pw-correct", "expires_in": 3600.0})
    assert response.status_code == 200


def test_the_ldap_route_is_documented_when_configured(make_app: Callable[..., Flask]) -> None:
    # Port 9 (discard): nothing answers, and nothing is asked: only the routing is looked at.
    app = make_app(LDAP_HOST="127.0.0.1", LDAP_PORT=9, LDAP_BASE_DN="dc=example,dc=org")
    with app.app_context():
        doc = document(app.test_client())
        assert ("/api/authenticate/ldap", "post") in api_rules(app)
        assert api_rules(app) == documented(doc, "/api")
        response = app.test_client().post("/api/authenticate/ldap", data=b"x", content_type="text/plain")
        check(doc, "/api/authenticate/ldap", "post", response)


def authorization_code(client: Any, client_id: str) -> str:
    """Alice approves ``client_id`` on the consent page; the code from the redirect."""
    login(client)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
                       "scope": "reports:read", "state": "s"})
    page = client.get("/oauth/authorize?" + query)
    assert page.status_code == 200 and page.mimetype == "text/html"
    action, fields = consent_form(page.get_data(as_text=True))
    answer = client.post(action, data={**fields, "apitokens_decision": "approve"})
    assert answer.status_code == 302
    client.delete_cookie("session")
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def test_real_oauth2_responses_match_the_document(app: Flask, client: Any, user: Any) -> None:
    doc = document(client)
    seen: set[tuple[str, str]] = set()

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = client.open(path, method=method.upper(), **kwargs)
        check(doc, path, method, response)
        seen.add((path, method))
        return response

    made = clients.create_client(name="Reports", public=False, scopes=["reports:read"], redirect_uris=[REDIRECT_URI])
    client_id, secret = made.client.client_id, made.client_secret
    client_basic = basic(client_id, secret)
    code = authorization_code(client, client_id)

    issued = call("post", "/oauth/token", headers=client_basic,
                  data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI})
    assert issued.status_code == 200, issued.json
    assert issued.json["token_type"] == "Bearer" and issued.json["scope"] == "reports:read"
    assert issued.headers["Cache-Control"] == "no-store"
    refreshed = call("post", "/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                   "client_secret": secret,
                                                   "refresh_token": issued.json["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json["refresh_token"] != issued.json["refresh_token"]
    assert call("post", "/oauth/token", headers=client_basic, data={"grant_type": "password"}).json["error"] == \
        "unsupported_grant_type"
    stranger = basic("nobody", "nothing")
    refused = call("post", "/oauth/token", headers=stranger, data={"grant_type": "authorization_code", "code": "x"})
    assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
    big = call("post", "/oauth/token", data={"grant_type": "x" * 70000})
    assert big.status_code == 413 and "message" in big.json

    access = refreshed.json["access_token"]
    active = call("post", "/oauth/introspect", headers=client_basic, data={"token": access})
    assert active.status_code == 200
    assert active.json["active"] is True and active.json["client_id"] == client_id
    assert active.json["token_type"] == "Bearer" and active.json["username"] == "alice"
    unknown = call("post", "/oauth/introspect", headers=client_basic, data={"token": "apo_nonsense"})
    assert unknown.status_code == 200 and unknown.json == {"active": False}
    assert call("post", "/oauth/introspect", headers=client_basic, data={}).json["error"] == "invalid_request"
    assert call("post", "/oauth/introspect", data={"token": access}).status_code == 401

    revoked = call("post", "/oauth/revoke", headers=client_basic,
                   data={"token": access, "token_type_hint": "access_token"})
    assert revoked.status_code == 200 and revoked.json == {}
    assert client.post("/oauth/introspect", headers=client_basic, data={"token": access}).json == {"active": False}
    assert call("post", "/oauth/revoke", headers=client_basic, data={"token": "apo_nonsense"}).status_code == 200
    hint = call("post", "/oauth/revoke", headers=client_basic, data={"token": access, "token_type_hint": "cookie"})
    assert hint.status_code == 400 and hint.json["error"] == "unsupported_token_type"  # RFC 7009 2.2.1
    unauthenticated = call("post", "/oauth/revoke", data={"token": access, "client_id": "nobody"})
    assert unauthenticated.status_code == 400 and unauthenticated.json["error"] == "invalid_client"  # no Basic
    assert "WWW-Authenticate" in call("post", "/oauth/revoke", headers=stranger, data={"token": access}).headers
    # Last: a replayed code revokes every token it led to.
    replayed = call("post", "/oauth/token", headers=client_basic,
                    data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI})
    assert replayed.status_code == 400 and replayed.json["error"] == "invalid_grant"

    metadata = call("get", "/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    assert metadata.json["token_endpoint"] == "http://localhost/oauth/token"
    assert metadata.json["scopes_supported"] == sorted(app.extensions["apitokens"].settings.scopes)
    assert seen == documented(doc) - documented(doc, "/api")


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_client_id_with_a_nul_is_an_oauth_error_not_a_crash(app: Flask, client: Any, path: str) -> None:
    # PostgreSQL refuses NUL in a string: looking such a client id up raised (found by the fuzz).
    doc = document(client)
    form = {"grant_type": "refresh_token", "refresh_token": "x", "token": "x", "client_id": "00\x00",
            "client_secret": "s"}
    response = client.post(path, data=form)
    check(doc, path, "post", response)
    assert response.status_code == 400 and response.json["error"] == "invalid_client"
    response = client.post(path, data={"grant_type": "refresh_token", "refresh_token": "x", "token": "x"},
                           headers=basic("a\x00", "b"))
    check(doc, path, "post", response)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
