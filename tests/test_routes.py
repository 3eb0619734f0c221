"""The JSON routes of the foundation: good paths, documented errors, hostile bodies."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests import hostapp
from tests.helpers import auth, basic, login, token_rows

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# -- POST /api/token -------------------------------------------------------------
def test_session_token_for_a_logged_in_user(app: Flask, client: Any, user: Any) -> None:
    login(client)
    response = client.post("/api/token", json={"name": "laptop", "scopes": ["reports:read"], "expires_in": 3600})
    assert response.status_code == 200
    assert set(response.json) == {"token", "expiresOn"}
    assert ISO.fullmatch(response.json["expiresOn"])
    assert response.headers["Cache-Control"] == "no-store"
    row = token_rows(app)[0]
    assert (row.name, row.via, row.scopes, row.user_id) == ("laptop", "session", "reports:read", user.id)
    assert client.get("/reports", headers=auth(response.json["token"])).status_code == 200


def test_session_token_with_an_empty_body_like_curl(client: Any, user: Any) -> None:
    login(client)
    response = client.post("/api/token")
    assert response.status_code == 200
    assert response.json["token"].startswith("apt_")


def test_session_token_needs_a_login(client: Any, user: Any) -> None:
    response = client.post("/api/token")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert response.json["error"] == "unauthorized"


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"}, {"Origin": "http://localhost.evil.example"}])
def test_cross_site_requests_cannot_mint_tokens(app: Flask, client: Any, user: Any, headers: dict[str, str]) -> None:
    login(client)
    response = client.post("/api/token", headers=headers)
    assert response.status_code == 403
    assert response.json["error"] == "cross_site_request"
    assert token_rows(app) == []


def test_same_origin_and_trusted_origins_may(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_TRUSTED_ORIGINS=["https://app.example"])
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        login(client)
        assert client.post("/api/token", headers={"Origin": "http://localhost"}).status_code == 200
        assert client.post("/api/token", headers={"Origin": "https://app.example"}).status_code == 200
        assert client.post("/api/token", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_session_token_with_unknown_scope_is_400(app: Flask, client: Any, user: Any) -> None:
    login(client)
    response = client.post("/api/token", json={"scopes": ["root"]})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert token_rows(app) == []


def test_a_token_mints_another_only_with_tokens_scope_and_never_wider(client: Any, user: Any,
                                                                      issue: Callable[..., str]) -> None:
    plain = issue(user, scopes=["reports:read"])
    assert client.post("/api/token", headers=auth(plain)).status_code == 403
    manager = issue(user, scopes=["tokens", "reports:read"])
    assert client.post("/api/token", json={"scopes": ["reports:read"]}, headers=auth(manager)).status_code == 200
    wider = client.post("/api/token", json={"scopes": ["reports:write"]}, headers=auth(manager))
    assert wider.status_code == 403


def test_switched_off_session_route_is_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_SESSION_TOKENS=False)
    assert app.test_client().post("/api/token").status_code == 404


# -- POST /api/authenticate/userpass ---------------------------------------------------
def test_userpass_with_a_form(client: Any, user: Any) -> None:
    response = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"})
    assert response.status_code == 200
    assert set(response.json) == {"token", "expiresOn"}


def test_userpass_with_json_and_scopes(client: Any, user: Any) -> None:
    response = client.post("/api/authenticate/userpass",
                           json={"username": "alice", "password": "pw-correct", "scopes": "reports:read"})
    assert response.status_code == 200
    assert client.get("/reports", headers=auth(response.json["token"])).status_code == 200


def test_userpass_accepts_the_email_as_username(client: Any, user: Any) -> None:
    response = client.post("/api/authenticate/userpass",
                           data={"username": "alice@example.com", "password": "pw-correct"})
    assert response.status_code == 200


def test_wrong_user_and_wrong_password_are_indistinguishable(app: Flask, client: Any, user: Any) -> None:
    wrong_password = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "nope"})
    wrong_user = client.post("/api/authenticate/userpass", data={"username": "mallory", "password": "nope"})
    assert wrong_password.status_code == wrong_user.status_code == 401
    assert wrong_password.json == wrong_user.json == {
        "error": "invalid_credentials", "message": "The account name or password is wrong."}
    assert wrong_password.headers["WWW-Authenticate"] == wrong_user.headers["WWW-Authenticate"]
    assert token_rows(app) == []


def test_inactive_user_cannot_get_a_token(client: Any, user: Any) -> None:
    user.active = False
    hostapp.db.session.commit()
    response = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_credentials"


@pytest.mark.parametrize("data", [{}, {"username": "alice"}, {"password": "pw-correct"}])
def test_userpass_missing_fields_is_400(client: Any, user: Any, data: dict[str, str]) -> None:
    response = client.post("/api/authenticate/userpass", data=data)
    assert response.status_code == 400
    assert response.json["error"] == "missing_field"


def test_user_without_a_local_password_is_refused(app: Flask, client: Any) -> None:
    hostapp.make_user("ldapuser", password=None)
    response = client.post("/api/authenticate/userpass", data={"username": "ldapuser", "password": ""})
    assert response.status_code == 400
    response = client.post("/api/authenticate/userpass", data={"username": "ldapuser", "password": "anything"})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_credentials"


# -- POST /api/api_tokens ---------------------------------------------------------
def test_password_exchange(app: Flask, client: Any, user: Any) -> None:
    response = client.post("/api/api_tokens", json={"email": "alice@example.com", "password": "pw-correct"})
    assert response.status_code == 200
    assert set(response.json) == {"person_id", "token", "expiresOn"}
    assert response.json["person_id"] == user.id
    assert token_rows(app)[0].via == "exchange"
    me = client.get("/api/me", headers=auth(response.json["token"]))
    assert me.json["person_id"] == user.id


def test_password_exchange_wrong_password_and_unknown_email(client: Any, user: Any) -> None:
    for body in ({"email": "alice@example.com", "password": "x"}, {"email": "nobody@example.com", "password": "x"},
                 {"email": "alice", "password": "pw-correct"}):
        response = client.post("/api/api_tokens", json=body)
        assert response.status_code == 401
        assert response.json["error"] == "invalid_credentials"


def test_password_exchange_refuses_accounts_without_password(client: Any) -> None:
    hostapp.make_user("oauthuser", password=None)
    response = client.post("/api/api_tokens", json={"email": "oauthuser@example.com", "password": "guess"})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_credentials"


def test_password_exchange_needs_json(client: Any, user: Any) -> None:
    response = client.post("/api/api_tokens", data={"email": "alice@example.com", "password": "pw-correct"})
    assert response.status_code == 415
    single_quoted = "{'email': 'alice@example.com', 'password': 'pw-correct'}"
    response = client.post("/api/api_tokens", data=single_quoted, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_json"
    assert "double quotes" in response.json["message"]


def test_password_exchange_switched_off_is_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_PASSWORD_EXCHANGE=False)
    response = app.test_client().post("/api/api_tokens", json={"email": "a@example.com", "password": "x"})
    assert response.status_code == 404


# -- GET /api/me ------------------------------------------------------------------
def test_me_with_a_token(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, name="ci", scopes=["reports:read"])
    body = client.get("/api/me", headers=auth(token, "Bearer")).json
    assert {k: body[k] for k in ("person_id", "username", "email", "organization", "is_admin")} == {
        "person_id": user.id, "username": "alice", "email": "alice@example.com", "organization": "Acme",
        "is_admin": False}
    assert body["token"]["name"] == "ci" and body["token"]["kind"] == "token" and body["token"]["via"] == "cli"
    assert body["token"]["scopes"] == ["reports:read"]
    assert ISO.fullmatch(body["token"]["expiresOn"])


def test_me_with_a_session_has_no_token(client: Any, user: Any) -> None:
    login(client)
    body = client.get("/api/me").json
    assert body["username"] == "alice" and body["token"] is None


def test_me_without_credentials_is_401(client: Any) -> None:
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"]


# -- managing tokens --------------------------------------------------------------
def test_list_tokens_newest_first_without_secrets(client: Any, user: Any, other_user: Any,
                                                  issue: Callable[..., str]) -> None:
    first = issue(user, name="first")
    second = issue(user, name="second", scopes=["tokens"])
    issue(other_user, name="bob's")
    response = client.get("/api/tokens", headers=auth(second))
    assert response.status_code == 200
    tokens = response.json["tokens"]
    assert [t["name"] for t in tokens] == ["second", "first"]
    assert set(tokens[0]) == {"id", "name", "kind", "via", "scopes", "createdOn", "lastUsedOn", "expiresOn",
                              "recentUses"}
    # The listing request itself was the second token's first use.
    assert [use["ip"] for use in tokens[0]["recentUses"]] == ["127.0.0.1"] and tokens[1]["recentUses"] == []
    assert first.split(":")[1] not in response.get_data(as_text=True)
    assert second.split(":")[1] not in response.get_data(as_text=True)


def test_managing_needs_the_tokens_scope(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"])
    for method, path in (("get", "/api/tokens"), ("delete", "/api/tokens"), ("delete", "/api/tokens/x"),
                         ("post", "/api/tokens/x/rotate")):
        response = getattr(client, method)(path, headers=auth(token))
        assert response.status_code == 403, path
        assert response.json["error"] == "insufficient_scope"
    assert client.get("/api/tokens").status_code == 401


def test_revoke_one_token(client: Any, user: Any, issue: Callable[..., str]) -> None:
    login(client)
    doomed = issue(user, scopes=["reports:read"])
    kept = issue(user, scopes=["reports:read"])
    doomed_id = doomed.split(":")[0][4:]
    response = client.delete(f"/api/tokens/{doomed_id}")
    assert response.status_code == 200 and response.json["revoked"] == [doomed_id]
    assert client.get("/reports", headers=auth(doomed)).status_code == 401
    assert client.get("/reports", headers=auth(kept)).status_code == 200
    again = client.delete(f"/api/tokens/{doomed_id}")
    assert again.status_code == 404 and again.json["error"] == "token_not_found"


def test_cannot_revoke_someone_elses_token(client: Any, user: Any, other_user: Any, issue: Callable[..., str]) -> None:
    theirs = issue(other_user, scopes=["reports:read"])
    mine = issue(user, scopes=["tokens"])
    response = client.delete(f"/api/tokens/{theirs.split(':')[0][4:]}", headers=auth(mine))
    assert response.status_code == 404
    assert client.get("/reports", headers=auth(theirs)).status_code == 200


def test_log_out_everywhere(client: Any, user: Any, other_user: Any, issue: Callable[..., str]) -> None:
    mine = [issue(user, scopes=["reports:read", "tokens"]) for _ in range(3)]
    theirs = issue(other_user, scopes=["reports:read"])
    response = client.delete("/api/tokens", headers=auth(mine[0]))
    assert response.status_code == 200 and len(response.json["revoked"]) == 3
    assert all(client.get("/reports", headers=auth(t)).status_code == 401 for t in mine)
    assert client.get("/reports", headers=auth(theirs)).status_code == 200


def test_rotate_route(client: Any, user: Any, issue: Callable[..., str]) -> None:
    old = issue(user, name="deploy", scopes=["tokens", "reports:read"])
    old_id = old.split(":")[0][4:]
    response = client.post(f"/api/tokens/{old_id}/rotate", headers=auth(old))
    assert response.status_code == 200
    assert response.json["replaces"] == old_id and response.json["id"] != old_id
    new = response.json["token"]
    assert client.get("/reports", headers=auth(new)).status_code == 200
    assert client.get("/reports", headers=auth(old)).status_code == 200  # grace period
    listed = {t["id"]: t for t in client.get("/api/tokens", headers=auth(new)).json["tokens"]}
    assert listed[response.json["id"]]["name"] == "deploy"


def test_rotate_unknown_or_revoked_is_404(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    login(client)
    assert client.post("/api/tokens/nosuchtoken1/rotate").status_code == 404
    token = issue(user)
    token_id = token.split(":")[0][4:]
    client.delete(f"/api/tokens/{token_id}")
    assert client.post(f"/api/tokens/{token_id}/rotate").status_code == 404


# -- hostile input -----------------------------------------------------------------
def test_oversized_body_is_413_json(client: Any, user: Any) -> None:
    response = client.post("/api/authenticate/userpass", data={"username": "alice", "password": "x" * 70000})
    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


def test_oversized_chunked_body_is_413_json(client: Any, user: Any) -> None:
    import io

    body = io.BytesIO(b'{"username": "' + b"a" * 100000 + b'"}')
    response = client.post("/api/authenticate/userpass", input_stream=body, content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_base={"wsgi.input_terminated": True})  # as gunicorn marks chunked input
    assert response.status_code == 413
    assert response.is_json


@pytest.mark.parametrize("body,content_type", [
    ("[1, 2]", "application/json"), ("null", "application/json"), ("\xff\xfe", "application/json"),
    ("<xml/>", "application/xml"), ("username=alice", "text/plain"),
])
def test_bad_bodies_are_4xx_json(client: Any, user: Any, body: str, content_type: str) -> None:
    response = client.post("/api/authenticate/userpass", data=body.encode("latin-1"), content_type=content_type)
    assert response.status_code in (400, 415)
    assert response.is_json and "error" in response.json


@pytest.mark.parametrize("value", [123, ["alice"], {"a": 1}, "a\x00b", "a" * 2000])
def test_ill_typed_fields_are_400(client: Any, user: Any, value: Any) -> None:
    response = client.post("/api/authenticate/userpass", json={"username": value, "password": "pw-correct"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_field"


# "²".isdigit() is true and int() refuses it; 5,000 digits pass int()'s limit: both were 500s.
@pytest.mark.parametrize("expires_in", [0, -1, "soon", 1.5, True, 10**12, "²", "٣٦٠٠", "9" * 5000, 0.5, "3600.0"])
def test_bad_expires_in_is_400(client: Any, user: Any, expires_in: Any) -> None:
    response = client.post("/api/authenticate/userpass",
                           json={"username": "alice", "password": "pw-correct", "expires_in": expires_in})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_field"
    assert token_rows(client.application) == []


def test_wrong_method_is_405_json(client: Any) -> None:
    response = client.get("/api/authenticate/userpass")
    assert response.status_code == 405
    assert response.is_json


def test_unknown_path_under_the_prefix_is_404_json(client: Any) -> None:
    response = client.get("/api/no-such-route")
    assert response.status_code == 404
    assert response.is_json and response.json["error"] == "not_found"


def test_host_paths_keep_the_hosts_error_pages(client: Any) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert not response.is_json


@pytest.mark.parametrize("method, path", [("DELETE", "/api/tokens/{}"), ("POST", "/api/tokens/{}/rotate")])
def test_a_holder_cannot_revoke_or_rotate_an_administrators_key(client: Any, user: Any, issue: Callable[..., str],
                                                                  method: str, path: str) -> None:
    key = issue(user, kind="key")
    login(client)
    response = client.open(path.format(key.split(":")[0][4:]), method=method)
    assert response.status_code == 404
    assert response.json["error"] == "token_not_found"
    assert client.get("/keys-only", headers=auth(key, "key")).status_code == 200
    assert all(row.expires_at is None for row in token_rows(client.application) if row.kind == "key")


BODY_ROUTES = ["/api/authenticate/userpass", "/api/api_tokens", "/api/token", "/api/authenticate/ldap",
               "/api/authenticate/github", "/api/user-token"]


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_max_body_size_is_honoured_on_every_route_with_a_body(make_app: Callable[..., Flask], path: str) -> None:
    app = make_app(APITOKENS_MAX_BODY_SIZE=200, RATELIMIT_ENABLED=False, LDAP_HOST="127.0.0.1", LDAP_PORT=9,
                   LDAP_BASE_DN="dc=example,dc=org",
                   APITOKENS_OAUTH_PROVIDERS={"github": {"api_base_url": "http://127.0.0.1:9/"}})
    with app.app_context():
        hostapp.make_user("alice")
        client = app.test_client()
        response = client.post(path, json={"username": "alice", "padding": "x" * 300}, headers=basic())
        assert response.status_code == 413, response.get_data(as_text=True)
        assert response.json["error"] == "payload_too_large"
        assert token_rows(app) == []
        small = client.post(path, json={"username": "alice", "padding": "x" * 100}, headers=basic())
        assert small.status_code != 413
