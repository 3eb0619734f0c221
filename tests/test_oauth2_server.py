"""The OAuth2 authorization server end to end, over real HTTP, driven by
Authlib's requests client (an OAuth2 client nobody here wrote)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from flask import Flask

from flask_apitokens.oauth2 import grants_store
from tests import hostapp
from tests.helpers import token_rows
from tests.oauth2_server import (
    OTHER_REDIRECT_URI,
    REDIRECT_URI,
    Served,
    answer_consent,
    authorize,
    full_flow,
    oauth_session,
    query_of,
    register,
    serve,
)


@pytest.fixture(autouse=True)
def _insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # Authlib's client refuses plain http unless told this is a test setup.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def served(make_app: Callable[..., Flask]) -> Iterator[Served]:
    app = make_app(APITOKENS_LOGIN_VIEW="/login")
    with app.app_context():
        hostapp.make_user("alice", organization="Acme")
        hostapp.make_user("bob")
    with serve(app) as running, app.app_context():
        yield running


def rows_by_kind(app: Flask, kind: str) -> list[Any]:
    return [row for row in token_rows(app) if row.kind == kind]


def bearer(served: Served, token: str) -> requests.Response:
    return requests.get(served.url + "/reports", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def remembered_consent(served: Served, browser: requests.Session, session: Any, **params: Any) -> tuple[str, str]:
    """(redirect Location, code_verifier) of an authorization the person approved before: no page."""
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier=verifier, **params)
    answer = browser.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, (answer.status_code, answer.text[:300])
    assert answer.headers["Location"].startswith(REDIRECT_URI + "?code="), answer.headers["Location"]
    return answer.headers["Location"], verifier


# -- the good paths -------------------------------------------------------------------
def test_public_client_with_pkce_gets_a_token_that_protected_views_accept(served: Served) -> None:
    client, secret = register(public=True)
    assert secret is None
    session = oauth_session(client, scope="reports:read")
    browser = served.login()
    location, state, verifier = authorize(served, browser, session)
    params = query_of(location)
    assert location.startswith(REDIRECT_URI + "?")
    assert params["state"] == state and "code" in params

    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert token["access_token"].startswith("apo_") and token["refresh_token"].startswith("apr_")
    assert token["scope"] == "reports:read" and 3500 <= token["expires_in"] <= 3600

    response = bearer(served, token["access_token"])
    assert response.status_code == 200 and response.json()["user"] == "alice"
    # The refresh token is never accepted on a protected view.
    assert bearer(served, token["refresh_token"]).status_code == 401

    (access,) = rows_by_kind(served.app, "oauth2")
    (refresh,) = rows_by_kind(served.app, "refresh")
    assert access.client_id == refresh.client_id == client.client_id
    assert access.parent_id == refresh.id and refresh.parent_id is None
    assert access.via == "oauth2" and access.scope_list == ["reports:read"]
    for row in (access, refresh):
        assert len(row.digest) == 32
        assert row.digest not in (token["access_token"].encode(), token["refresh_token"].encode())
    # The code is kept as a digest, marked used.
    code = served.app.extensions["apitokens"].db.session.execute(
        sa.select(served.app.extensions["apitokens"].oauth2_models.Code)).scalar_one()
    assert code.used_at is not None and params["code"].encode() != code.digest and code.family_id == refresh.id


def test_confidential_client_authenticates_with_its_secret(served: Served) -> None:
    client, secret = register(public=False, scopes=("reports:read", "reports:write"))
    assert secret and client.secret_digest and secret.encode() not in client.secret_digest
    # Without PKCE: allowed for a confidential client.
    session = oauth_session(client, secret, scope="reports:read reports:write", code_challenge_method=None)
    location, _, _ = authorize(served, served.login(), session)
    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location)
    assert token["scope"] == "reports:read reports:write"
    assert bearer(served, token["access_token"]).status_code == 200
    # With PKCE too. The consent is remembered: the second time, no page.
    session2 = oauth_session(client, secret, scope="reports:read")
    location2 = remembered_consent(served, served.login(), session2)
    token2 = session2.fetch_token(served.url + "/oauth/token", authorization_response=location2[0],
                                  code_verifier=location2[1])
    first_id = bearer(served, token["access_token"]).json()["token"]
    assert bearer(served, token2["access_token"]).json()["token"] != first_id


def test_confidential_client_with_a_wrong_secret_is_refused(served: Served) -> None:
    client, secret = register(public=False)
    session = oauth_session(client, "not-the-secret", scope="reports:read")
    location, _, verifier = authorize(served, served.login(), session)
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert caught.value.error == "invalid_client"
    assert rows_by_kind(served.app, "oauth2") == []
    # The code was not spent by the failed attempt: the real client can still use it.
    real = oauth_session(client, secret, scope="reports:read")
    token = real.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert bearer(served, token["access_token"]).status_code == 200


def test_refresh_rotates_both_tokens(served: Served) -> None:
    client, _ = register()
    session, first = full_flow(served, client)
    second = session.refresh_token(served.url + "/oauth/token", refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert bearer(served, second["access_token"]).status_code == 200
    refreshes = {row.id: row for row in rows_by_kind(served.app, "refresh")}
    assert len(refreshes) == 2
    root = next(row for row in refreshes.values() if row.parent_id is None)
    newer = next(row for row in refreshes.values() if row.parent_id is not None)
    assert root.revoked_at is not None and newer.revoked_at is None and newer.parent_id == root.id
    assert all(row.parent_id == root.id for row in rows_by_kind(served.app, "oauth2"))
    # The newest refresh token works again, and rotates again.
    third = session.refresh_token(served.url + "/oauth/token", refresh_token=second["refresh_token"])
    assert bearer(served, third["access_token"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(served: Served) -> None:
    client, _ = register()
    session, first = full_flow(served, client)
    second = session.refresh_token(served.url + "/oauth/token", refresh_token=first["refresh_token"])
    third = session.refresh_token(served.url + "/oauth/token", refresh_token=second["refresh_token"])
    assert bearer(served, third["access_token"]).status_code == 200
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=first["refresh_token"])
    assert caught.value.error == "invalid_grant"
    for token in (first, second, third):
        assert bearer(served, token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=third["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert all(row.revoked_at is not None for row in token_rows(served.app))


def test_replaying_a_code_fails_and_revokes_what_it_issued(served: Served) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read")
    location, _, verifier = authorize(served, served.login(), session)
    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert bearer(served, token["access_token"]).status_code == 200
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert caught.value.error == "invalid_grant"
    assert bearer(served, token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert len(token_rows(served.app)) == 2 and all(row.revoked_at for row in token_rows(served.app))


def test_an_expired_code_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_OAUTH2_CODE_EXPIRES_IN=1)
    with app.app_context():
        hostapp.make_user("alice")
    with serve(app) as served, app.app_context():
        client, _ = register()
        session = oauth_session(client, scope="reports:read")
        location, _, verifier = authorize(served, served.login(), session)
        time.sleep(1.1)
        with pytest.raises(OAuthError) as caught:
            session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
        assert caught.value.error == "invalid_grant"
        assert token_rows(app) == []


# -- redirect URIs, PKCE, scopes ------------------------------------------------------
def test_an_unregistered_redirect_uri_is_refused_without_redirecting(served: Served) -> None:
    client, _ = register()
    browser = served.login()
    for uri in ("http://127.0.0.1:9/callback/", "http://evil.example/callback", "http://127.0.0.1:9/callback?x=1",
                'http://127.0.0.1:9/"quoted"\\'):
        session = oauth_session(client, scope="reports:read", redirect_uri=uri)
        url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 43)
        response = browser.get(url, allow_redirects=False, timeout=10)
        assert response.status_code == 400, (uri, response.text)
        assert "Location" not in response.headers
        assert response.json()["error"] == "invalid_request"


def test_the_token_request_must_repeat_the_same_redirect_uri(served: Served) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read")
    location, _, verifier = authorize(served, served.login(), session)
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier,
                            redirect_uri=OTHER_REDIRECT_URI)
    assert caught.value.error == "invalid_grant"
    assert token_rows(served.app) == []


@pytest.mark.parametrize("verifier", [None, "wrong-" + "x" * 40, "short"])
def test_a_missing_or_wrong_pkce_verifier_is_refused(served: Served, verifier: str | None) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read")
    location, _, _ = authorize(served, served.login(), session)
    options = {} if verifier is None else {"code_verifier": verifier}
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(served.url + "/oauth/token", authorization_response=location, **options)
    assert caught.value.error == ("invalid_grant" if verifier and len(verifier) > 43 else "invalid_request")
    assert token_rows(served.app) == []


@pytest.mark.parametrize("extra", [{}, {"code_challenge_method": "plain"}])
def test_a_public_client_must_send_an_s256_challenge(served: Served, extra: dict[str, str]) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read", code_challenge_method=None)
    params = {"code_challenge": "c" * 43, **extra} if extra else {}
    url, state = session.create_authorization_url(served.url + "/oauth/authorize", **params)
    response = served.login().get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert query_of(response.headers["Location"]) == {
        "error": "invalid_request", "state": state,
        "error_description": query_of(response.headers["Location"])["error_description"]}


@pytest.mark.parametrize("scope", ["reports:write", "reports:read undeclared"])
def test_scopes_are_limited_to_what_the_client_may_ask(served: Served, scope: str) -> None:
    client, _ = register(scopes=("reports:read",))
    session = oauth_session(client, scope=scope)
    url, state = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 43)
    response = served.login().get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_scope" and params["state"] == state


def test_no_scope_asked_means_the_clients_registered_scopes(served: Served) -> None:
    client, _ = register(scopes=("reports:read",))
    _, token = full_flow(served, client, scope="")
    assert token["scope"] == "reports:read"
    assert bearer(served, token["access_token"]).status_code == 200


# -- the consent page ------------------------------------------------------------------
def test_consent_page_names_the_client_and_each_scope(served: Served) -> None:
    client, _ = register(public=False, scopes=("reports:read", "reports:write"), name="Acme <Reports>")
    session = oauth_session(client, "x", scope="reports:read reports:write")
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 43)
    page = served.login().get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Acme &lt;Reports&gt;" in page.text and "<Reports>" not in page.text
    assert "Read reports." in page.text and "Write reports." in page.text
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


def test_deny_returns_access_denied_to_the_client(served: Served) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read")
    url, state = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 43)
    location = answer_consent(served, served.login(), url, decision="deny")
    params = query_of(location)
    assert location.startswith(REDIRECT_URI) and params["error"] == "access_denied" and params["state"] == state
    assert "code" not in params
    assert grants_store.list_approved_apps(hostapp.db.session.execute(
        sa.select(hostapp.User).filter_by(username="alice")).scalar_one()) == []


def test_not_logged_in_goes_to_the_login_page_and_back(served: Served) -> None:
    client, _ = register()
    url, _ = oauth_session(client, scope="reports:read").create_authorization_url(
        served.url + "/oauth/authorize", code_verifier="v" * 43)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    target = response.headers["Location"]
    assert target.startswith("/login?next=")
    assert query_of(target)["next"].startswith("/oauth/authorize?")
    assert query_of(query_of(target)["next"])["client_id"] == client.client_id
    # A bearer token does not count as being logged in on the consent page.
    _, token = full_flow(served, client)
    response = requests.get(url, headers={"Authorization": f"Bearer {token['access_token']}"},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("tamper", ["missing", "garbage", "other_request", "other_user"])
def test_the_consent_form_is_protected_against_forgery(served: Served, tamper: str) -> None:
    from tests.oauth2_server import consent_form

    client, _ = register(scopes=("reports:read", "reports:write"))
    session = oauth_session(client, scope="reports:read")
    url, _ = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier="v" * 43)
    browser = served.login()
    action, fields = consent_form(browser.get(url, timeout=10).text)
    fields["apitokens_decision"] = "approve"
    if tamper == "missing":
        del fields["apitokens_consent"]
    elif tamper == "garbage":
        fields["apitokens_consent"] = "x.y.z"
    elif tamper == "other_request":
        action = action.replace("scope=reports%3Aread", "scope=reports%3Aread+reports%3Awrite")
        assert "reports%3Awrite" in action
    else:
        browser = served.login("bob")
    response = browser.post(served.url + action, data=fields, allow_redirects=False, timeout=10)
    assert response.status_code == 403 and response.json()["error"] == "invalid_consent"
    assert token_rows(served.app) == []


# -- revocation, introspection, metadata -----------------------------------------------
def test_revoking_an_access_token_makes_protected_views_refuse_it(served: Served) -> None:
    client, _ = register()
    session, token = full_flow(served, client)
    response = session.revoke_token(served.url + "/oauth/revoke", token=token["access_token"],
                                    token_type_hint="access_token")
    assert response.status_code == 200 and response.json() == {}
    assert bearer(served, token["access_token"]).status_code == 401
    # Revoking an access token leaves the refresh token usable.
    fresh = session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert bearer(served, fresh["access_token"]).status_code == 200


def test_revoking_a_refresh_token_revokes_its_family(served: Served) -> None:
    client, secret = register(public=False)
    session, token = full_flow(served, client, secret)
    fresh = session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    response = session.revoke_token(served.url + "/oauth/revoke", token=fresh["refresh_token"])
    assert response.status_code == 200
    assert bearer(served, fresh["access_token"]).status_code == 401
    assert all(row.revoked_at is not None for row in token_rows(served.app))


def test_revocation_of_unknown_or_foreign_tokens(served: Served) -> None:
    client, _ = register()
    other, other_secret = register(public=False, name="Other")
    _, token = full_flow(served, client)
    other_session = oauth_session(other, other_secret)
    # Unknown token: 200, nothing happens (RFC 7009 2.2).
    assert other_session.revoke_token(served.url + "/oauth/revoke", token="apo_nope").status_code == 200
    # Another client's token: refused, and it keeps working.
    response = other_session.revoke_token(served.url + "/oauth/revoke", token=token["access_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert bearer(served, token["access_token"]).status_code == 200
    # No client authentication at all.
    response = requests.post(served.url + "/oauth/revoke", data={"token": token["access_token"]}, timeout=10)
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    assert bearer(served, token["access_token"]).status_code == 200


def test_introspection_of_active_and_revoked_tokens(served: Served) -> None:
    client, secret = register(public=False)
    session, token = full_flow(served, client, secret)
    url = served.url + "/oauth/introspect"
    active = session.introspect_token(url, token=token["access_token"]).json()
    assert active["active"] is True and active["client_id"] == client.client_id
    assert active["scope"] == "reports:read" and active["username"] == "alice" and active["token_type"] == "Bearer"
    assert active["exp"] - active["iat"] == 3600 and active["iss"] == served.url
    refresh = session.introspect_token(url, token=token["refresh_token"], token_type_hint="refresh_token").json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    session.revoke_token(served.url + "/oauth/revoke", token=token["access_token"])
    assert session.introspect_token(url, token=token["access_token"]).json() == {"active": False}
    assert session.introspect_token(url, token="apo_garbage").json() == {"active": False}


def test_introspection_is_for_authenticated_clients_only(served: Served) -> None:
    public, _ = register()
    confidential, secret = register(public=False, name="Other")
    _, token = full_flow(served, public)
    url = served.url + "/oauth/introspect"
    # A public client cannot authenticate, so it may not introspect.
    response = requests.post(url, data={"token": token["access_token"], "client_id": public.client_id}, timeout=10)
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    response = requests.post(url, data={"token": token["access_token"]}, auth=(confidential.client_id, "wrong"),
                             timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    # A confidential client learns nothing about another client's token.
    response = requests.post(url, data={"token": token["access_token"]}, auth=(confidential.client_id, secret),
                             timeout=10)
    assert response.status_code == 200 and response.json() == {"active": False}


def test_metadata_document(served: Served) -> None:
    response = requests.get(served.url + "/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == served.url
    assert doc["authorization_endpoint"] == served.url + "/oauth/authorize"
    assert doc["token_endpoint"] == served.url + "/oauth/token"
    assert doc["revocation_endpoint"] == served.url + "/oauth/revoke"
    assert doc["introspection_endpoint"] == served.url + "/oauth/introspect"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert set(doc["scopes_supported"]) == {"tokens", "login", "reports:read", "reports:write"}


# -- hostile and malformed requests -----------------------------------------------------
@pytest.mark.parametrize("body", [
    {},
    {"grant_type": "password", "username": "alice", "password": "pw-correct"},
    {"grant_type": "authorization_code", "code": "x" * 5000, "client_id": "nope"},
    {"grant_type": "authorization_code", "code": "\u00e9t\u00e9", "client_id": "nope"},
    {"grant_type": "refresh_token", "refresh_token": "apr_garbage", "client_id": "nope"},
    {"grant_type": "client_credentials", "client_id": "x" * 500},
])
def test_bad_token_requests_get_json_errors(served: Served, body: dict[str, str]) -> None:
    response = requests.post(served.url + "/oauth/token", data=body, timeout=10)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_request", "unsupported_grant_type", "invalid_client")
    assert response.headers["Cache-Control"] == "no-store"


def test_garbage_codes_and_refresh_tokens_of_a_real_client(served: Served) -> None:
    client, _ = register()
    for body in ({"grant_type": "authorization_code", "code": "\u00e9" * 10},
                 {"grant_type": "authorization_code", "code": "nope"},
                 {"grant_type": "refresh_token", "refresh_token": "\u00e9"},
                 {"grant_type": "refresh_token", "refresh_token": "apo_notarefreshtoken"}):
        response = requests.post(served.url + "/oauth/token", data={**body, "client_id": client.client_id},
                                 timeout=10)
        assert response.status_code == 400 and response.json()["error"] in ("invalid_grant", "invalid_request")


def test_an_access_token_is_not_a_refresh_token(served: Served) -> None:
    client, _ = register()
    session, token = full_flow(served, client)
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=token["access_token"])
    assert caught.value.error == "invalid_grant"
    assert bearer(served, token["access_token"]).status_code == 200


def test_a_refresh_token_only_works_for_its_own_client(served: Served) -> None:
    client, _ = register()
    other, _ = register(name="Other")
    _, token = full_flow(served, client)
    with pytest.raises(OAuthError) as caught:
        oauth_session(other).refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert all(row.revoked_at is None for row in token_rows(served.app))


def test_hostile_authorize_requests_get_json_errors(served: Served) -> None:
    browser = served.login()
    client, _ = register()
    for params in ({}, {"client_id": "nope", "response_type": "code"},
                   {"client_id": client.client_id, "response_type": "token", "redirect_uri": REDIRECT_URI},
                   {"client_id": "\u00e9\"\\", "response_type": "code\""},
                   {"client_id": client.client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
                    "state": "a\"b\\c\u00e9", "scope": "reports:read\"", "code_challenge": "c" * 43,
                    "code_challenge_method": "S256"},
                   {"client_id": "x" * 5000, "response_type": "code"}):
        response = browser.get(served.url + "/oauth/authorize", params=params, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 400), (params, response.status_code, response.text)
        if response.status_code == 400:
            assert "error" in response.json()
        else:
            assert response.headers["Location"].startswith(REDIRECT_URI)


def test_wrong_methods_and_oversized_bodies_are_json(served: Served) -> None:
    for method, path, allowed in (("GET", "/oauth/token", "POST"), ("PUT", "/oauth/revoke", "POST"),
                                  ("GET", "/oauth/introspect", "POST"), ("DELETE", "/oauth/authorize", "GET, POST"),
                                  ("POST", "/.well-known/oauth-authorization-server", "GET, HEAD")):
        response = requests.request(method, served.url + path, timeout=10)
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed", (method, path)
        assert response.headers["Allow"] == allowed
    response = requests.post(served.url + "/oauth/token", data={"grant_type": "x" * 70000}, timeout=10)
    assert response.status_code == 413 and "error" in response.json()


# -- the switch, the service functions ---------------------------------------------------
def test_switched_off_the_routes_are_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_OAUTH2_SERVER=False)
    client = app.test_client()
    for method, path in (("get", "/oauth/authorize"), ("post", "/oauth/token"), ("post", "/oauth/revoke"),
                         ("post", "/oauth/introspect"), ("get", "/.well-known/oauth-authorization-server")):
        assert getattr(client, method)(path).status_code == 404


def test_approved_apps_are_listed_and_can_be_revoked(served: Served) -> None:
    client, _ = register(name="Report Viewer")
    other, _ = register(name="Other App")
    _, token = full_flow(served, client)
    _, other_token = full_flow(served, other)
    alice = hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="alice")).scalar_one()
    apps = grants_store.list_approved_apps(alice)
    assert {app.client_name for app in apps} == {"Report Viewer", "Other App"}
    viewer = next(app for app in apps if app.client_id == client.client_id)
    assert viewer.scopes == ("reports:read",) and viewer.live_tokens == 2 and viewer.approved_at is not None
    assert viewer.to_json()["client_name"] == "Report Viewer"

    revoked = grants_store.revoke_app(alice, client.client_id)
    assert len(revoked) == 2
    assert bearer(served, token["access_token"]).status_code == 401
    assert bearer(served, other_token["access_token"]).status_code == 200
    assert [app.client_id for app in grants_store.list_approved_apps(alice)] == [other.client_id]
    bob = hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="bob")).scalar_one()
    assert grants_store.list_approved_apps(bob) == [] and grants_store.revoke_app(bob, other.client_id) == []


# -- concurrency ----------------------------------------------------------------------------
def _race(count: int, send: Callable[[], requests.Response]) -> list[requests.Response]:
    import threading

    barrier = threading.Barrier(count)
    answers: list[requests.Response] = []

    def worker() -> None:
        barrier.wait()
        answers.append(send())

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_a_code_raced_by_several_requests_is_spent_once(served: Served) -> None:
    client, _ = register()
    session = oauth_session(client, scope="reports:read")
    location, _, verifier = authorize(served, served.login(), session)
    body = {"grant_type": "authorization_code", "code": query_of(location)["code"], "client_id": client.client_id,
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    answers = _race(4, lambda: requests.post(served.url + "/oauth/token", data=body, timeout=30))
    assert sorted(answer.status_code for answer in answers) == [200, 400, 400, 400]
    assert [answer.json()["error"] for answer in answers if answer.status_code == 400] == ["invalid_grant"] * 3
    # One family was issued, and the replays revoked it.
    assert len(rows_by_kind(served.app, "oauth2")) == 1
    assert all(row.revoked_at is not None for row in token_rows(served.app))


def test_a_refresh_token_raced_by_several_requests_rotates_once(served: Served) -> None:
    client, _ = register()
    _, token = full_flow(served, client)
    body = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": client.client_id}
    answers = _race(4, lambda: requests.post(served.url + "/oauth/token", data=body, timeout=30))
    assert sorted(answer.status_code for answer in answers) == [200, 400, 400, 400]
    assert [answer.json()["error"] for answer in answers if answer.status_code == 400] == ["invalid_grant"] * 3
    # Reuse was detected: the whole family is revoked, the new tokens too.
    assert len(rows_by_kind(served.app, "refresh")) == 2
    assert all(row.revoked_at is not None for row in token_rows(served.app))


def test_long_dead_codes_are_cleaned_up(served: Served) -> None:
    import datetime as dt

    client, _ = register()
    state = served.app.extensions["apitokens"]
    Code = state.oauth2_models.Code
    alice = hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="alice")).scalar_one()
    long_ago = dt.datetime(2020, 1, 1)
    recent = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=1)
    for digest, moment in ((b"o" * 32, long_ago), (b"r" * 32, recent)):
        state.db.session.add(Code(digest=digest, client_id=client.client_id, user_id=alice.id,
                                  redirect_uri=REDIRECT_URI, created_at=moment, expires_at=moment, used_at=moment))
    state.db.session.commit()
    full_flow(served, client)
    state.db.session.expire_all()
    digests = set(state.db.session.execute(sa.select(Code.digest)).scalars())
    assert b"o" * 32 not in digests and b"r" * 32 in digests and len(digests) == 2


@pytest.mark.parametrize("how", ["one", "all"])
def test_the_owner_revoking_an_apps_access_token_ends_the_authorization(served: Served, how: str) -> None:
    client, _ = register()
    session, token = full_flow(served, client)
    service = served.app.extensions["apitokens"].service
    (access,) = rows_by_kind(served.app, "oauth2")
    if how == "one":
        assert service.revoke([access.id], user_id=access.user_id) == [access.id]
    else:
        service.revoke_all(access.user_id, reason="logout_everywhere")
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert all(row.revoked_at is not None for row in token_rows(served.app))


def test_the_host_can_override_the_consent_page(make_app: Callable[..., Flask]) -> None:
    from jinja2 import DictLoader

    app = make_app(APITOKENS_LOGIN_VIEW="/login")
    app.jinja_loader = DictLoader({  # type: ignore[assignment]
        "apitokens/oauth2_consent.html": "<p>Our own page for {{ client.name }}: "
                                         "{% for name, text in scopes %}{{ name }}={{ text }};{% endfor %}</p>"})
    with app.app_context():
        hostapp.make_user("alice")
        client, _ = register()
        browser = app.test_client()
        browser.post("/login", data={"username": "alice"})
        url, _ = oauth_session(client, scope="reports:read").create_authorization_url(
            "http://localhost/oauth/authorize", code_verifier="v" * 43)
        page = browser.get(url)
    assert page.status_code == 200
    assert page.get_data(as_text=True) == "<p>Our own page for Report Viewer: reports:read=Read reports.;</p>"


def test_a_code_only_works_for_the_client_it_was_issued_to(served: Served) -> None:
    client, _ = register()
    thief, _ = register(name="Thief")
    session = oauth_session(client, scope="reports:read")
    location, _, verifier = authorize(served, served.login(), session)
    body = {"grant_type": "authorization_code", "code": query_of(location)["code"], "client_id": thief.client_id,
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    response = requests.post(served.url + "/oauth/token", data=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    # The rightful client still gets its token.
    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    assert bearer(served, token["access_token"]).status_code == 200


def test_a_deactivated_user_stops_the_apps_tokens(served: Served) -> None:
    client, secret = register(public=False)
    session, token = full_flow(served, client, secret)
    alice = hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="alice")).scalar_one()
    alice.active = False
    hostapp.db.session.commit()
    assert bearer(served, token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_grant"
    assert session.introspect_token(served.url + "/oauth/introspect", token=token["access_token"]).json() == {
        "active": False}


def test_authorize_with_no_login_page_answers_401(make_app: Callable[..., Flask]) -> None:
    # Neither APITOKENS_LOGIN_VIEW nor Flask-Login's login_view: nowhere to send
    # the person, so the answer says to log in.
    app = make_app()
    with app.app_context():
        client, _ = register()
        response = app.test_client().get("/oauth/authorize", query_string={
            "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI,
            "scope": "reports:read", "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"})
        assert response.status_code == 401
        assert response.json == {"error": "unauthorized", "message": "Log in to approve this application."}
        assert response.headers["WWW-Authenticate"]


# -- consent remembered (issue 15, item 10) -----------------------------------------------
def test_consent_is_remembered_per_client_and_scope_set(served: Served) -> None:
    client, _ = register(scopes=("reports:read", "reports:write"))
    browser = served.login()
    first = oauth_session(client, scope="reports:read reports:write")
    location, _, verifier = authorize(served, browser, first)
    first.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)

    # The same scopes, or fewer: no page, a code at once, and a working token.
    for scope in ("reports:read reports:write", "reports:read"):
        again = oauth_session(client, scope=scope)
        location, verifier = remembered_consent(served, browser, again)
        token = again.fetch_token(served.url + "/oauth/token", authorization_response=location,
                                  code_verifier=verifier)
        assert token["scope"] == scope
        assert bearer(served, token["access_token"]).status_code == 200
    # prompt=consent asks again anyway.
    location, _, _ = authorize(served, browser, oauth_session(client, scope="reports:read"), prompt="consent")
    assert "code=" in location
    # Another person has approved nothing: the page (authorize() asserts it is shown).
    with served.app.app_context():
        hostapp.make_user("carol")
        hostapp.db.session.remove()
    authorize(served, served.login("carol"), oauth_session(client, scope="reports:read"))


def test_a_wider_scope_set_is_asked_for(served: Served) -> None:
    client, _ = register(scopes=("reports:read", "reports:write"))
    browser = served.login()
    narrow = oauth_session(client, scope="reports:read")
    location, _, verifier = authorize(served, browser, narrow)
    narrow.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    wider = oauth_session(client, scope="reports:read reports:write")
    page = browser.get(wider.create_authorization_url(served.url + "/oauth/authorize",
                                                      code_verifier=generate_token(48))[0],
                       allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "reports:write" in page.text


def test_taking_an_app_back_asks_again(served: Served) -> None:
    client, _ = register()
    browser = served.login()
    _, token = full_flow(served, client)
    with served.app.app_context():
        user = hostapp.db.session.execute(sa.select(hostapp.User).filter_by(username="alice")).scalar_one()
        assert grants_store.revoke_app(user, client.client_id)
        hostapp.db.session.remove()
    assert bearer(served, token["access_token"]).status_code == 401
    session = oauth_session(client, scope="reports:read")
    page = browser.get(session.create_authorization_url(served.url + "/oauth/authorize",
                                                        code_verifier=generate_token(48))[0],
                       allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "apitokens_consent" in page.text
