"""The token page (``/tokens``) through the Flask test client, on the tests'
host app: login, CSRF, headers, who may see and do what, bad input."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from flask_apitokens import APITokens
from flask_apitokens.models import utcnow
from flask_apitokens.oauth2 import clients as oauth2_clients
from tests import hostapp
from tests.helpers import auth, basic, bearer, create_token, csrf_token, login, page_csrf, token_rows
from tests.oauth2_server import OTHER_REDIRECT_URI, REDIRECT_URI, consent_form, query_of

DAY = 86400
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


@pytest.fixture
def page_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The host app with a login view, so the page can send people to it."""
    application = make_app(APITOKENS_LOGIN_VIEW="/login")
    with application.app_context():
        yield application


@pytest.fixture
def alice(page_app: Flask) -> hostapp.User:
    return hostapp.make_user("alice")


@pytest.fixture
def bob(page_app: Flask) -> hostapp.User:
    return hostapp.make_user("bob")


@pytest.fixture
def admin(page_app: Flask) -> hostapp.User:
    return hostapp.make_user("root", is_admin=True)


def logged_in(app: Flask, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def shown_secret(html: str) -> str | None:
    found = re.search(r'id="new-secret"[^>]*value="([^"]+)"', html)
    return found.group(1) if found else None


def assert_security_headers(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def row_state(html: str, token_id: str) -> str | None:
    found = re.search(rf'data-token-id="{re.escape(token_id)}" data-state="([a-z]+)"', html)
    return found.group(1) if found else None


# -- who gets in --------------------------------------------------------------------------------
def test_anonymous_is_sent_to_the_configured_login_view_with_next(page_app: Flask) -> None:
    response = page_app.test_client().get("/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Ftokens"


def test_anonymous_is_sent_to_flask_logins_login_view(make_app: Callable[..., Flask],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    monkeypatch.setattr(hostapp.login_manager, "login_view", "login")
    response = app.test_client().get("/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Ftokens"


def test_anonymous_without_any_login_view_gets_401_page(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    response = app.test_client().get("/tokens")
    assert response.status_code == 401
    assert response.mimetype == "text/html"
    assert "Log in to manage your tokens." in response.get_data(as_text=True)
    assert_security_headers(response)


def test_anonymous_post_creates_nothing(page_app: Flask, alice: hostapp.User) -> None:
    response = page_app.test_client().post("/tokens/create", data={"token-name": "x"})
    assert response.status_code == 302
    assert token_rows(page_app) == []


def test_an_api_token_cannot_use_the_page(page_app: Flask, alice: hostapp.User, issue: Callable[..., str]) -> None:
    token = issue(alice, scopes=["tokens"])
    response = page_app.test_client().get("/tokens", headers=auth(token))
    assert response.status_code == 403
    assert token not in response.get_data(as_text=True)


def test_page_off_when_switched_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_UI=False)
    assert app.test_client().get("/tokens").status_code == 404
    assert "apitokens_ui" not in app.blueprints


def test_page_path_is_configurable(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_UI_URL_PREFIX="/account/tokens/", APITOKENS_LOGIN_VIEW="/login")
    with app.app_context():
        hostapp.make_user("alice")
    client = logged_in(app, "alice")
    assert client.get("/account/tokens").status_code == 200
    assert client.get("/tokens").status_code == 404
    with client.get("/account/tokens/static/apitokens.css") as css:
        assert css.status_code == 200


# -- headers ----------------------------------------------------------------------------------------
def test_every_page_sends_the_security_headers(page_app: Flask, alice: hostapp.User,
                                               issue: Callable[..., str]) -> None:
    client = logged_in(page_app, "alice")
    token = issue(alice)
    token_id = token.split("_", 1)[1].split(":")[0]
    created = create_token(client)
    assert created.status_code == 201
    for response in (client.get("/tokens"), created, client.get(f"/tokens/{token_id}/revoke"),
                     client.get("/tokens/nope/revoke"), client.get("/tokens/static/apitokens.js")):
        assert_security_headers(response)
        response.close()
    assert client.get("/tokens/nope/revoke").status_code == 404


def test_static_files_need_no_login(page_app: Flask) -> None:
    client = page_app.test_client()
    with client.get("/tokens/static/apitokens.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css"
    with client.get("/tokens/static/apitokens.js") as js:
        assert js.status_code == 200 and "clipboard" in js.get_data(as_text=True)


def test_page_has_no_inline_script_and_a_label_for_every_control(page_app: Flask, admin: hostapp.User) -> None:
    html = logged_in(page_app, "root").get("/tokens").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/tokens/static/apitokens.js" defer>']
    assert " on" + "click=" not in html and "style=" not in html
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    controls = re.findall(r'<(?:input|select|textarea)\b(?![^>]*type="(?:hidden|submit)")[^>]*\bid="([^"]+)"', html)
    assert controls, "no controls found"
    assert set(controls) <= labelled


# -- listing ------------------------------------------------------------------------------------------
def test_page_lists_own_tokens_with_their_state(page_app: Flask, alice: hostapp.User, bob: hostapp.User) -> None:
    service = page_app.extensions["apitokens"].service
    active = service.issue(alice, via="cli", name="active one", scopes=["reports:read"]).info
    expired = service.issue(alice, via="userpass", name="old").info
    revoked = service.issue(alice, via="session", name="gone").info
    rotated = service.issue(alice, via="cli", name="rotated").info
    theirs = service.issue(bob, via="cli", name="bobs").info
    service.get(expired.id).expires_at = utcnow() - dt.timedelta(seconds=5)
    service.commit()
    service.revoke([revoked.id])
    successor = service.rotate(rotated.id, user=alice).info

    html = logged_in(page_app, "alice").get("/tokens").get_data(as_text=True)
    assert row_state(html, active.id) == "active"
    assert row_state(html, expired.id) == "expired"
    assert row_state(html, revoked.id) == "revoked"
    assert row_state(html, rotated.id) == "grace"
    assert row_state(html, successor.id) == "active"
    assert row_state(html, theirs.id) is None and "bobs" not in html
    assert "active one" in html and "<code>reports:read</code>" in html and ">userpass<" in html
    # Revoke links only for credentials that still work.
    assert f"/tokens/{active.id}/revoke" in html and f"/tokens/{rotated.id}/revoke" in html
    assert f"/tokens/{expired.id}/revoke" not in html and f"/tokens/{revoked.id}/revoke" not in html


def test_page_never_shows_an_existing_secret(page_app: Flask, alice: hostapp.User, issue: Callable[..., str]) -> None:
    token = issue(alice, name="cli token")
    html = logged_in(page_app, "alice").get("/tokens").get_data(as_text=True)
    assert "cli token" in html
    assert token.split(":")[1] not in html
    assert shown_secret(html) is None


# -- creating ----------------------------------------------------------------------------------------
def test_create_shows_the_token_once_and_it_works(page_app: Flask, alice: hostapp.User) -> None:
    client = logged_in(page_app, "alice")
    response = create_token(client, name="  deploy bot ", scopes=["reports:read", "tokens"])
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    token = shown_secret(html)
    assert token and token.startswith("apt_")
    assert "it will not be shown again" in html
    assert 'data-copy="new-secret"' in html
    assert response.headers["Cache-Control"] == "no-store"

    [row] = token_rows(page_app)
    assert (row.kind, row.via, row.name, row.scopes, row.user_id) == ("token", "page", "deploy bot",
                                                                       "reports:read tokens", alice.id)
    assert abs((row.expires_at - row.created_at).total_seconds() - 30 * DAY) < 2
    assert token.split(":")[1].encode() not in (row.digest or b"")

    used = page_app.test_client().get("/reports", headers=auth(token))
    assert used.status_code == 200 and used.get_json()["user"] == "alice"
    again = client.get("/tokens").get_data(as_text=True)
    assert token not in again and token.split(":")[1] not in again
    assert row_state(again, row.id) == "active"


def test_create_without_scopes_makes_a_token_with_none(page_app: Flask, alice: hostapp.User) -> None:
    client = logged_in(page_app, "alice")
    token = shown_secret(create_token(client, name="plain").get_data(as_text=True))
    assert token is not None
    assert token_rows(page_app)[0].scopes == ""
    assert page_app.test_client().get("/reports", headers=auth(token)).status_code == 403
    assert page_app.test_client().get("/plain", headers=auth(token)).status_code == 200


def test_expiry_choices_are_capped_by_max_lifetime(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_MAX_LIFETIME=30 * DAY,
                   APITOKENS_UI_EXPIRY_CHOICES=[1, 7, 30, 90, 365])
    with app.app_context():
        hostapp.make_user("alice")
        client = logged_in(app, "alice")
        html = client.get("/tokens").get_data(as_text=True)
        select = re.search(r'<select id="token-expires_in_days".*?</select>', html, re.S).group(0)
        assert re.findall(r'value="(\d+)"', select) == ["1", "7", "30"]
        refused = create_token(client, expires_in_days="365")
        assert refused.status_code == 400
        assert "Not a valid choice" in refused.get_data(as_text=True)
        assert token_rows(app) == []
        assert create_token(client, expires_in_days="30").status_code == 201


def test_no_cap_offers_never(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_MAX_LIFETIME=None)
    with app.app_context():
        hostapp.make_user("alice")
        client = logged_in(app, "alice")
        assert create_token(client, expires_in_days="0").status_code == 201
        assert token_rows(app)[0].expires_at is None


@pytest.mark.parametrize("fields, message", [
    ({"name": ""}, "Give the token a name."),
    ({"name": "   "}, "Give the token a name."),
    ({"name": "x" * 201}, "Field cannot be longer than 200 characters."),
    ({"scopes": ["admin:everything"]}, "is not a valid choice"),
    ({"scopes": ["reports:read", "<script>alert(1)</script>"]}, "is not a valid choice"),
    ({"expires_in_days": "abc"}, "Invalid Choice: could not coerce."),
    ({"expires_in_days": "-7"}, "Not a valid choice"),
    ({"expires_in_days": "99999999999999999999"}, "Not a valid choice"),
    ({"expires_in_days": ""}, "Invalid Choice: could not coerce."),
])
def test_bad_input_re_renders_the_form_with_an_error(page_app: Flask, alice: hostapp.User,
                                                     fields: dict[str, Any], message: str) -> None:
    client = logged_in(page_app, "alice")
    response = create_token(client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html
    assert "<script>alert(1)</script>" not in html
    assert shown_secret(html) is None
    assert token_rows(page_app) == []
    assert_security_headers(response)


@pytest.mark.parametrize("name", ["bad\x00name", "tab\there", "bell\x07", "del\x7f"])
def test_control_characters_in_the_name_are_refused_not_a_500(page_app: Flask, alice: hostapp.User,
                                                              name: str) -> None:
    response = create_token(logged_in(page_app, "alice"), name=name)
    assert response.status_code == 400
    assert "Use letters, digits, spaces and punctuation only." in response.get_data(as_text=True)
    assert token_rows(page_app) == []


def test_admin_key_for_a_username_with_a_nul_is_refused(page_app: Flask, admin: hostapp.User) -> None:
    response = create_key(logged_in(page_app, "root"), username="ali\x00ce")
    assert response.status_code == 400
    assert token_rows(page_app) == []


# -- CSRF ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("csrf", [None, "", "forged-token", "IjAwMDAi.AAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_a_post_without_a_valid_csrf_token_is_refused(page_app: Flask, alice: hostapp.User,
                                                      csrf: str | None) -> None:
    client = logged_in(page_app, "alice")
    data = {"token-name": "stolen", "token-expires_in_days": "30", "token-scopes": "reports:read"}
    if csrf is not None:
        data["token-csrf_token"] = csrf
    response = client.post("/tokens/create", data=data)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert token_rows(page_app) == []


def test_a_csrf_token_from_another_session_is_refused(page_app: Flask, alice: hostapp.User,
                                                      bob: hostapp.User) -> None:
    bobs_token = page_csrf(logged_in(page_app, "bob"))
    client = logged_in(page_app, "alice")
    response = client.post("/tokens/create", data={"token-csrf_token": bobs_token, "token-name": "x",
                                                   "token-expires_in_days": "30"})
    assert response.status_code == 400
    assert token_rows(page_app) == []


def test_csrf_stays_on_when_the_host_turns_flask_wtf_csrf_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", WTF_CSRF_ENABLED=False)
    with app.app_context():
        hostapp.make_user("alice")
        client = logged_in(app, "alice")
        response = client.post("/tokens/create", data={"token-name": "x", "token-expires_in_days": "30"})
        assert response.status_code == 400
        assert token_rows(app) == []


def test_revoke_without_csrf_is_refused(page_app: Flask, alice: hostapp.User) -> None:
    info = page_app.extensions["apitokens"].service.issue(alice, via="cli", name="keep").info
    client = logged_in(page_app, "alice")
    assert client.post(f"/tokens/{info.id}/revoke", data={}).status_code == 400
    assert token_rows(page_app)[0].revoked_at is None


# -- revoking -----------------------------------------------------------------------------------------
def test_revoke_asks_first_then_revokes(page_app: Flask, alice: hostapp.User, issue: Callable[..., str]) -> None:
    token = issue(alice, name="old laptop", scopes=["reports:read"])
    [row] = token_rows(page_app)
    client = logged_in(page_app, "alice")
    assert page_app.test_client().get("/reports", headers=auth(token)).status_code == 200

    confirm = client.get(f"/tokens/{row.id}/revoke")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Revoke this token?" in html and "old laptop" in html
    assert token_rows(page_app)[0].revoked_at is None  # asking changes nothing

    done = client.post(f"/tokens/{row.id}/revoke", data={"csrf_token": csrf_token(html, form="")})
    assert done.status_code == 302 and done.headers["Location"] == "/tokens"
    assert token_rows(page_app)[0].revoked_at is not None
    assert page_app.test_client().get("/reports", headers=auth(token)).status_code == 401
    after = client.get("/tokens").get_data(as_text=True)
    assert "was revoked" in after and row_state(after, row.id) == "revoked"
    # Once revoked, there is nothing left to confirm.
    assert client.get(f"/tokens/{row.id}/revoke").status_code == 404


def test_someone_elses_token_cannot_be_revoked(page_app: Flask, alice: hostapp.User, bob: hostapp.User,
                                               issue: Callable[..., str]) -> None:
    bobs = issue(bob, scopes=["reports:read"])
    bobs_id = token_rows(page_app)[0].id
    client = logged_in(page_app, "alice")
    assert client.get(f"/tokens/{bobs_id}/revoke").status_code == 404
    csrf = csrf_token(client.get("/tokens").get_data(as_text=True), form="token")
    response = client.post(f"/tokens/{bobs_id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 404
    assert token_rows(page_app)[0].revoked_at is None
    assert page_app.test_client().get("/reports", headers=auth(bobs)).status_code == 200


@pytest.mark.parametrize("token_id", ["%00", "abc%00def", "x" * 17, "a%20b", "%C3%A9t%C3%A9", "..%2F..%2Fetc"])
def test_odd_ids_are_not_found_never_a_500(page_app: Flask, admin: hostapp.User, token_id: str) -> None:
    client = logged_in(page_app, "root")
    csrf = page_csrf(client)
    for path in (f"/tokens/{token_id}/revoke", f"/tokens/keys/{token_id}/revoke"):
        assert client.get(path).status_code == 404
        assert client.post(path, data={"csrf_token": csrf}).status_code == 404


def test_an_api_key_cannot_be_revoked_as_a_token(page_app: Flask, admin: hostapp.User) -> None:
    key = page_app.extensions["apitokens"].service.issue(admin, via="cli", kind="key", name="k").info
    client = logged_in(page_app, "root")
    assert client.get(f"/tokens/{key.id}/revoke").status_code == 404
    assert client.get(f"/tokens/{'x' * 500}/revoke").status_code == 404


# -- administrators and API keys ----------------------------------------------------------------------------
def test_non_admin_cannot_see_or_post_the_admin_forms(page_app: Flask, alice: hostapp.User,
                                                      admin: hostapp.User) -> None:
    key = page_app.extensions["apitokens"].service.issue(admin, via="cli", kind="key", name="ops").info
    client = logged_in(page_app, "alice")
    html = client.get("/tokens").get_data(as_text=True)
    assert 'id="key-form"' not in html and "API keys" not in html and key.id not in html
    csrf = csrf_token(html)
    created = client.post("/tokens/keys/create", data={"key-csrf_token": csrf, "key-username": "alice",
                                                       "key-name": "mine", "key-expires_in_days": "0"})
    assert created.status_code == 403
    assert client.get(f"/tokens/keys/{key.id}/revoke").status_code == 403
    assert client.post(f"/tokens/keys/{key.id}/revoke", data={"csrf_token": csrf}).status_code == 403
    rows = token_rows(page_app)
    assert len(rows) == 1 and rows[0].revoked_at is None


def create_key(client: Any, **fields: Any) -> Any:
    data = {"key-csrf_token": page_csrf(client, "key"), "key-username": "alice", "key-name": "ci",
            "key-expires_in_days": "0"}
    data.update({f"key-{name}": value for name, value in fields.items()})
    return client.post("/tokens/keys/create", data=data)


@pytest.mark.parametrize("csrf", [None, "forged-token"])
def test_admin_key_forms_refuse_a_post_without_a_valid_csrf_token(page_app: Flask, admin: hostapp.User,
                                                                   alice: hostapp.User, csrf: str | None) -> None:
    key = page_app.extensions["apitokens"].service.issue(alice, via="cli", kind="key", name="ops").info
    client = logged_in(page_app, "root")
    token = {} if csrf is None else {"key-csrf_token": csrf}
    created = client.post("/tokens/keys/create", data={**token, "key-username": "alice", "key-name": "stolen",
                                                       "key-expires_in_days": "0"})
    assert created.status_code == 400
    assert "security token" in created.get_data(as_text=True)
    revoke = {} if csrf is None else {"csrf_token": csrf}
    assert client.post(f"/tokens/keys/{key.id}/revoke", data=revoke).status_code == 400
    rows = token_rows(page_app)
    assert len(rows) == 1 and rows[0].revoked_at is None


def test_admin_creates_a_key_for_a_user_shown_once(page_app: Flask, admin: hostapp.User,
                                                   alice: hostapp.User) -> None:
    client = logged_in(page_app, "root")
    response = create_key(client, scopes=["reports:read"])
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    key = shown_secret(html)
    assert key and key.startswith("apk_")
    assert "for alice" in html and "Authorization: key" in html
    [row] = token_rows(page_app)
    assert (row.kind, row.via, row.user_id, row.scopes, row.expires_at) == ("key", "page", alice.id,
                                                                            "reports:read", None)
    used = page_app.test_client().get("/keys-only", headers=auth(key, "key"))
    assert used.status_code == 200 and used.get_json()["key"] == row.id
    listed = client.get("/tokens").get_data(as_text=True)
    assert key not in listed and row_state(listed, row.id) == "active"
    assert re.search(r'<td data-label="Owner">alice</td>', listed)
    # A key is not one of alice's personal tokens.
    assert row.id not in logged_in(page_app, "alice").get("/tokens").get_data(as_text=True)


def test_admin_key_expiry_is_not_capped(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_MAX_LIFETIME=7 * DAY)
    with app.app_context():
        hostapp.make_user("root", is_admin=True)
        hostapp.make_user("alice")
        client = logged_in(app, "root")
        assert create_key(client, expires_in_days="365").status_code == 201
        row = token_rows(app)[0]
        assert abs((row.expires_at - row.created_at).total_seconds() - 365 * DAY) < 2


@pytest.mark.parametrize("fields, message", [
    ({"username": "nobody"}, "No user has this username."),
    ({"username": ""}, "Name the key&#39;s owner."),
    ({"name": ""}, "Give the token a name."),
    ({"scopes": ["root"]}, "is not a valid choice"),
    ({"expires_in_days": "3"}, "Not a valid choice"),
])
def test_admin_bad_key_input_re_renders(page_app: Flask, admin: hostapp.User, alice: hostapp.User,
                                        fields: dict[str, Any], message: str) -> None:
    response = create_key(logged_in(page_app, "root"), **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert token_rows(page_app) == []


def test_admin_revokes_a_key_after_confirming(page_app: Flask, admin: hostapp.User, alice: hostapp.User) -> None:
    client = logged_in(page_app, "root")
    key = shown_secret(create_key(client).get_data(as_text=True))
    row = token_rows(page_app)[0]
    confirm = client.get(f"/tokens/keys/{row.id}/revoke")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Revoke this API key?" in html and "alice" in html
    done = client.post(f"/tokens/keys/{row.id}/revoke", data={"csrf_token": csrf_token(html, form="")})
    assert done.status_code == 302
    assert token_rows(page_app)[0].revoked_at is not None
    assert page_app.test_client().get("/keys-only", headers=auth(key, "key")).status_code == 401


def test_admin_cannot_revoke_a_personal_token_as_a_key(page_app: Flask, admin: hostapp.User,
                                                       alice: hostapp.User, issue: Callable[..., str]) -> None:
    issue(alice)
    token_id = token_rows(page_app)[0].id
    assert logged_in(page_app, "root").get(f"/tokens/keys/{token_id}/revoke").status_code == 404


# -- the host's templates, and the host's CSRFProtect --------------------------------------------------------
def test_host_templates_override_the_pages(page_app: Flask, alice: hostapp.User, tmp_path: Path) -> None:
    (tmp_path / "apitokens").mkdir()
    (tmp_path / "apitokens" / "base.html").write_text(
        "<!doctype html><title>Host</title><p id=host-layout>host layout</p>{% block content %}{% endblock %}"
    )
    page_app.template_folder = str(tmp_path)
    page_app.__dict__.pop("jinja_loader", None)
    page_app.jinja_env.loader = page_app.create_global_jinja_loader()
    html = logged_in(page_app, "alice").get("/tokens").get_data(as_text=True)
    assert "host layout" in html and "Your tokens" in html


def userpass_login(client: Any) -> Any:
    return client.post("/api/authenticate/userpass", json={"username": "alice", "password": "pw-correct"})


def test_host_csrfprotect_made_later_leaves_the_json_api_alone(page_app: Flask, alice: hostapp.User) -> None:
    csrf = CSRFProtect(page_app)
    csrf.exempt("tests.hostapp.login")  # the test host's bare login form
    client = page_app.test_client()
    response = userpass_login(client)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["token"].startswith("apt_")
    assert page_app.blueprints["apitokens_api"] in csrf._exempt_blueprints
    # The OAuth2 token endpoint answers as OAuth2 does, not with a CSRF refusal.
    oauth = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "nobody"})
    assert oauth.is_json and "error" in oauth.get_json() and "CSRF" not in oauth.get_data(as_text=True)
    assert page_app.blueprints["apitokens_oauth2"] in csrf._exempt_blueprints
    # The page's forms stay protected, by CSRFProtect too, and still work with their token.
    assert page_app.blueprints["apitokens_ui"] not in csrf._exempt_blueprints
    page = logged_in(page_app, "alice")
    assert page.post("/tokens/create", data={"token-name": "x", "token-expires_in_days": "30"}).status_code == 400
    assert create_token(page).status_code == 201


def test_host_csrfprotect_made_first_leaves_the_json_api_alone(database_url: str,
                                                               make_app: Callable[..., Flask]) -> None:
    make_app()  # makes the tables
    app = Flask(__name__)
    app.config.update(SECRET_KEY="another test secret key", SQLALCHEMY_DATABASE_URI=database_url,
                      APITOKENS_SCOPES={"reports:read": "Read reports."}, APITOKENS_OAUTH2_SERVER=True)
    csrf = CSRFProtect(app)
    hostapp.db.init_app(app)
    LoginManager(app)
    APITokens(app, db=hostapp.db, user_model=hostapp.User)
    assert app.blueprints["apitokens_api"] in csrf._exempt_blueprints
    assert app.blueprints["apitokens_oauth2"] in csrf._exempt_blueprints
    with app.app_context():
        hostapp.make_user("alice")
        try:
            client = app.test_client()
            assert userpass_login(client).status_code == 200
            # Other form posts of the host are still checked by CSRFProtect.
            refused = client.post("/tokens/create", data={"token-name": "x"})
            assert refused.status_code == 400 and refused.mimetype == "text/html"
        finally:
            hostapp.db.session.remove()
            hostapp.db.engine.dispose()


# -- OAuth2: apps a person approved -------------------------------------------------------------------------
def register_client(name: str = "Report Viewer", *, public: bool = False,
                    scopes: tuple[str, ...] = ("reports:read", "reports:write")) -> tuple[Any, str | None]:
    made = oauth2_clients.create_client(name=name, redirect_uris=[REDIRECT_URI], public=public, scopes=list(scopes))
    return made.client, made.client_secret


def approve_and_exchange(app: Flask, username: str, client_id: str, secret: str,
                         scope: str = "reports:read") -> dict[str, Any]:
    """The authorization code flow of a confidential client, the way a person
    and the app do it: consent page, Allow, then the code for tokens."""
    browser = logged_in(app, username)
    consent = browser.get("/oauth/authorize", query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": scope,
        "state": "st-1"})
    assert consent.status_code == 200, consent.get_data(as_text=True)
    action, fields = consent_form(consent.get_data(as_text=True))
    fields["apitokens_decision"] = "approve"
    answer = browser.post(action, data=fields)
    assert answer.status_code == 302
    params = query_of(answer.headers["Location"])
    assert params["state"] == "st-1"
    exchange = app.test_client().post("/oauth/token", headers=basic(client_id, secret), data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI})
    assert exchange.status_code == 200, exchange.get_data(as_text=True)
    return exchange.get_json()  # type: ignore[no-any-return]


def refresh(app: Flask, client_id: str, secret: str, refresh_token: str) -> Any:
    return app.test_client().post("/oauth/token", headers=basic(client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": refresh_token})


def test_approved_apps_are_listed_with_their_scopes(page_app: Flask, alice: hostapp.User, bob: hostapp.User) -> None:
    viewer, secret = register_client("Report <b>Viewer</b>")
    assert secret is not None
    approve_and_exchange(page_app, "alice", viewer.client_id, secret, scope="reports:read reports:write")
    response = logged_in(page_app, "alice").get("/tokens")
    assert response.status_code == 200
    assert_security_headers(response)
    html = response.get_data(as_text=True)
    section = html[html.index('id="approved-apps"'):]
    assert "Report &lt;b&gt;Viewer&lt;/b&gt;" in section and "<b>Viewer" not in html
    row = re.search(rf'<tr data-client-id="{viewer.client_id}">(.*?)</tr>', section, re.S)
    assert row is not None
    cells = row.group(1)
    assert "reports:read" in cells and "Read reports." in cells and "Write reports." in cells
    assert re.search(r'data-label="Live tokens">2<', cells)  # the access token and its refresh token
    assert re.search(r'data-label="First approved">\d{4}-\d\d-\d\d', cells)
    assert f'href="/tokens/apps/{viewer.client_id}/revoke"' in cells
    # Bob approved nothing: he sees none of it.
    bobs = logged_in(page_app, "bob").get("/tokens").get_data(as_text=True)
    assert 'id="no-apps"' in bobs and viewer.client_id not in bobs


def test_revoking_an_app_asks_first_then_its_tokens_stop_working(page_app: Flask, alice: hostapp.User) -> None:
    viewer, secret = register_client()
    other, other_secret = register_client("Other App")
    assert secret and other_secret
    tokens = approve_and_exchange(page_app, "alice", viewer.client_id, secret)
    others = approve_and_exchange(page_app, "alice", other.client_id, other_secret)
    api = page_app.test_client()
    assert api.get("/reports", headers=bearer(tokens["access_token"])).status_code == 200
    client = logged_in(page_app, "alice")

    confirm = client.get(f"/tokens/apps/{viewer.client_id}/revoke")
    assert confirm.status_code == 200
    assert_security_headers(confirm)
    html = confirm.get_data(as_text=True)
    assert "Revoke the access of &ldquo;Report Viewer&rdquo;?" in html and "Read reports." in html
    assert api.get("/reports", headers=bearer(tokens["access_token"])).status_code == 200  # asking is not revoking
    # Without the form's CSRF token: refused, nothing changes.
    refused = client.post(f"/tokens/apps/{viewer.client_id}/revoke", data={})
    assert refused.status_code == 400 and "security token" in refused.get_data(as_text=True)
    assert api.get("/reports", headers=bearer(tokens["access_token"])).status_code == 200

    done = client.post(f"/tokens/apps/{viewer.client_id}/revoke", data={"csrf_token": csrf_token(html, form="")})
    assert done.status_code == 302 and done.headers["Location"] == "/tokens"
    # At once: the access token is refused, the refresh token gets nothing.
    assert api.get("/reports", headers=bearer(tokens["access_token"])).status_code == 401
    refused_refresh = refresh(page_app, viewer.client_id, secret, tokens["refresh_token"])
    assert refused_refresh.status_code == 400 and refused_refresh.get_json()["error"] == "invalid_grant"
    rows = [row for row in token_rows(page_app) if row.client_id == viewer.client_id]
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)
    # The other app keeps its access.
    assert api.get("/reports", headers=bearer(others["access_token"])).status_code == 200
    after = client.get("/tokens").get_data(as_text=True)
    assert "no longer has access" in after
    assert f'data-client-id="{viewer.client_id}"' not in after and f'data-client-id="{other.client_id}"' in after
    # The approval is gone: nothing left to confirm, and the app must ask again.
    assert client.get(f"/tokens/apps/{viewer.client_id}/revoke").status_code == 404


def test_an_app_someone_else_approved_cannot_be_revoked(page_app: Flask, alice: hostapp.User,
                                                        bob: hostapp.User) -> None:
    viewer, secret = register_client()
    assert secret
    tokens = approve_and_exchange(page_app, "alice", viewer.client_id, secret)
    client = logged_in(page_app, "bob")
    assert client.get(f"/tokens/apps/{viewer.client_id}/revoke").status_code == 404
    response = client.post(f"/tokens/apps/{viewer.client_id}/revoke", data={"csrf_token": page_csrf(client)})
    assert response.status_code == 404
    assert page_app.test_client().get("/reports", headers=bearer(tokens["access_token"])).status_code == 200
    assert all(row.revoked_at is None for row in token_rows(page_app))


@pytest.mark.parametrize("client_id", ["%00", "abc%00def", "x" * 65, "a%20b", "%C3%A9t%C3%A9", "..%2F..%2Fetc",
                                       "unknown"])
def test_odd_client_ids_are_not_found_never_a_500(page_app: Flask, admin: hostapp.User, client_id: str) -> None:
    client = logged_in(page_app, "root")
    csrf = page_csrf(client)
    for path in (f"/tokens/apps/{client_id}/revoke", f"/tokens/clients/{client_id}/delete"):
        assert client.get(path).status_code == 404, path
        assert client.post(path, data={"csrf_token": csrf}).status_code == 404, path


def test_oauth2_sections_and_routes_are_absent_when_the_server_is_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_OAUTH2_SERVER=False)
    with app.app_context():
        hostapp.make_user("root", is_admin=True)
        client = logged_in(app, "root")
        html = client.get("/tokens").get_data(as_text=True)
        assert 'id="key-form"' in html  # the admin section is there...
        assert "Apps you approved" not in html and "OAuth2 clients" not in html and 'id="client-form"' not in html
        csrf = csrf_token(html)
        assert client.get("/tokens/apps/abc/revoke").status_code == 404
        assert client.post("/tokens/clients/create", data={"client-csrf_token": csrf}).status_code == 404
        assert client.get("/tokens/clients/abc/delete").status_code == 404


# -- OAuth2: clients, for administrators -----------------------------------------------------------------------
def create_client(client: Any, **fields: Any) -> Any:
    data: dict[str, Any] = {"client-csrf_token": page_csrf(client, "client"), "client-name": "Nightly Reports",
                            "client-redirect_uris": REDIRECT_URI + "\r\n" + OTHER_REDIRECT_URI,
                            "client-client_type": "confidential", "client-scopes": ["reports:read"]}
    data.update({f"client-{name}": value for name, value in fields.items()})
    return client.post("/tokens/clients/create", data=data)


def test_admin_registers_a_confidential_client_and_sees_its_secret_once(page_app: Flask, admin: hostapp.User,
                                                                         alice: hostapp.User) -> None:
    client = logged_in(page_app, "root")
    response = create_client(client, scopes=["reports:read", "reports:write"])
    assert response.status_code == 201
    assert_security_headers(response)
    html = response.get_data(as_text=True)
    secret = shown_secret(html)
    assert secret and "it will not be shown again" in html and "Client secret" in html
    (registered,) = oauth2_clients.list_clients()
    assert registered.name == "Nightly Reports" and not registered.public
    assert registered.redirect_uri_list == [REDIRECT_URI, OTHER_REDIRECT_URI]
    assert registered.scope_list == ["reports:read", "reports:write"]
    assert f'id="new-client-id">{registered.client_id}<' in html
    # Only a digest is stored, and the secret shown is the one it was made from.
    assert registered.secret_digest and secret.encode() not in registered.secret_digest
    state = page_app.extensions["apitokens"]
    assert state.service.hasher.digest(registered.client_id, secret) == registered.secret_digest
    # The client works: a real authorization code exchange with that secret.
    tokens = approve_and_exchange(page_app, "alice", registered.client_id, secret)
    assert page_app.test_client().get("/reports", headers=bearer(tokens["access_token"])).status_code == 200
    # Listed, and the secret is never shown again.
    again = client.get("/tokens").get_data(as_text=True)
    assert secret not in again and 'id="new-secret"' not in again
    row = re.search(rf'<tr data-client-id="{registered.client_id}">(.*?)</tr>', again, re.S)
    assert row is not None
    for text in ("Nightly Reports", "confidential", REDIRECT_URI, OTHER_REDIRECT_URI, "reports:write"):
        assert text in row.group(1)


def test_admin_registers_a_public_client_without_a_secret(page_app: Flask, admin: hostapp.User) -> None:
    client = logged_in(page_app, "root")
    response = create_client(client, client_type="public", name="Phone App")
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    (registered,) = oauth2_clients.list_clients()
    assert registered.public and registered.secret_digest is None
    assert shown_secret(html) is None and "has no secret" in html
    assert f'id="new-client-id">{registered.client_id}<' in html
    assert re.search(rf'<tr data-client-id="{registered.client_id}">.*?>public<', html, re.S)


@pytest.mark.parametrize("fields, message", [
    ({"name": ""}, "Give the application a name."),
    ({"name": "   "}, "Give the application a name."),
    ({"name": "x" * 201}, "Field cannot be longer than 200 characters."),
    ({"name": "bad\x00name"}, "Use letters, digits, spaces and punctuation only."),
    ({"redirect_uris": ""}, "Give at least one redirect URI."),
    ({"redirect_uris": "javascript:alert(1)"}, "Not an absolute http(s) URL"),
    ({"redirect_uris": "https://ok.example/cb\njavascript:alert(1)"}, "Not an absolute http(s) URL"),
    ({"redirect_uris": "https://app.example/cb#fragment"}, "Not an absolute http(s) URL"),
    ({"redirect_uris": "/relative/callback"}, "Not an absolute http(s) URL"),
    ({"redirect_uris": "https://a.example/\x00"}, "Not an absolute http(s) URL"),
    ({"redirect_uris": "\n".join(f"https://a.example/{n}" for n in range(21))}, "at most 20 redirect URIs"),
    ({"scopes": ["reports:read", "admin:everything"]}, "is not a valid choice"),
    ({"client_type": "trusted"}, "Not a valid choice"),
])
def test_admin_bad_client_input_re_renders_with_400(page_app: Flask, admin: hostapp.User,
                                                    fields: dict[str, Any], message: str) -> None:
    client = logged_in(page_app, "root")
    response = create_client(client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html
    assert 'id="client-form"' in html
    if "name" not in fields:
        assert 'value="Nightly Reports"' in html  # what was typed is kept
    assert 'id="new-secret"' not in html
    assert oauth2_clients.list_clients() == []


def test_admin_client_form_without_csrf_is_refused(page_app: Flask, admin: hostapp.User) -> None:
    client = logged_in(page_app, "root")
    for csrf in (None, "forged"):
        data = {"client-name": "Forged", "client-redirect_uris": REDIRECT_URI, "client-client_type": "confidential"}
        if csrf is not None:
            data["client-csrf_token"] = csrf
        response = client.post("/tokens/clients/create", data=data)
        assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert oauth2_clients.list_clients() == []


def test_admin_deletes_a_client_after_confirming_and_its_tokens_stop(page_app: Flask, admin: hostapp.User,
                                                                     alice: hostapp.User) -> None:
    viewer, secret = register_client()
    assert secret
    tokens = approve_and_exchange(page_app, "alice", viewer.client_id, secret)
    client = logged_in(page_app, "root")
    confirm = client.get(f"/tokens/clients/{viewer.client_id}/delete")
    assert confirm.status_code == 200
    assert_security_headers(confirm)
    html = confirm.get_data(as_text=True)
    assert "Delete the OAuth2 client &ldquo;Report Viewer&rdquo;?" in html and viewer.client_id in html
    assert REDIRECT_URI in html
    assert oauth2_clients.get_client(viewer.client_id) is not None  # asking is not deleting
    refused = client.post(f"/tokens/clients/{viewer.client_id}/delete", data={"csrf_token": "forged"})
    assert refused.status_code == 400
    assert oauth2_clients.get_client(viewer.client_id) is not None

    client_id = viewer.client_id  # read now: the request deletes the row in a session of its own
    done = client.post(f"/tokens/clients/{client_id}/delete", data={"csrf_token": csrf_token(html, form="")})
    assert done.status_code == 302 and done.headers["Location"] == "/tokens"
    page_app.extensions["apitokens"].db.session.expire_all()
    assert oauth2_clients.get_client(client_id) is None
    assert page_app.test_client().get("/reports", headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(page_app, client_id, secret, tokens["refresh_token"]).status_code in (400, 401)
    assert all(row.revoked_at is not None for row in token_rows(page_app))
    after = client.get("/tokens").get_data(as_text=True)
    assert "was deleted" in after and f'data-client-id="{client_id}"' not in after
    assert client.get(f"/tokens/clients/{client_id}/delete").status_code == 404


def test_non_admin_cannot_see_or_manage_oauth2_clients(page_app: Flask, alice: hostapp.User,
                                                       admin: hostapp.User) -> None:
    viewer, _ = register_client()
    client = logged_in(page_app, "alice")
    html = client.get("/tokens").get_data(as_text=True)
    assert "Apps you approved" in html  # everyone has that section
    assert 'id="client-form"' not in html and "OAuth2 clients" not in html and viewer.client_id not in html
    csrf = csrf_token(html)
    created = client.post("/tokens/clients/create", data={
        "client-csrf_token": csrf, "client-name": "Mine", "client-redirect_uris": REDIRECT_URI,
        "client-client_type": "confidential"})
    assert created.status_code == 403
    assert client.get(f"/tokens/clients/{viewer.client_id}/delete").status_code == 403
    assert client.post(f"/tokens/clients/{viewer.client_id}/delete", data={"csrf_token": csrf}).status_code == 403
    assert [c.client_id for c in oauth2_clients.list_clients()] == [viewer.client_id]


def test_a_client_id_with_a_slash_can_be_deleted(page_app: Flask, admin: hostapp.User) -> None:
    # The CLI takes any ASCII client id; the page's routes must still reach it.
    oauth2_clients.create_client(name="Team App", redirect_uris=[REDIRECT_URI], public=True, client_id="team/app")
    client = logged_in(page_app, "root")
    html = client.get("/tokens").get_data(as_text=True)
    assert 'href="/tokens/clients/team/app/delete"' in html
    confirm = client.get("/tokens/clients/team/app/delete")
    assert confirm.status_code == 200
    done = client.post("/tokens/clients/team/app/delete",
                       data={"csrf_token": csrf_token(confirm.get_data(as_text=True), form="")})
    assert done.status_code == 302
    assert oauth2_clients.list_clients() == []
