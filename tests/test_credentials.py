"""Presenting credentials: schemes, decorators, Flask-Login, and hostile headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_login import current_user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_apitokens import current_token, get_current_token
from flask_apitokens.credentials import read_authorization
from tests import hostapp
from tests.helpers import auth, host_request_loader, login

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=150)


@pytest.mark.parametrize("scheme", ["token", "Token", "TOKEN", "bearer", "Bearer", "BEARER"])
def test_scheme_names_are_case_insensitive(client: Any, user: Any, issue: Callable[..., str], scheme: str) -> None:
    assert client.get("/plain", headers=auth(issue(user), scheme)).status_code == 200


def test_a_token_sent_as_a_key_is_refused(client: Any, user: Any, issue: Callable[..., str]) -> None:
    response = client.get("/plain", headers=auth(issue(user), "key"))
    assert response.status_code == 401


def test_a_key_sent_as_a_token_is_refused_and_as_a_key_works(client: Any, user: Any, issue: Callable[..., str]) -> None:
    key = issue(user, kind="key")
    assert key.startswith("apk_")
    assert client.get("/plain", headers=auth(key, "token")).status_code == 401
    assert client.get("/plain", headers=auth(key, "Bearer")).status_code == 401
    assert client.get("/plain", headers=auth(key, "key")).status_code == 200
    assert client.get("/keys-only", headers=auth(key, "key")).status_code == 200


def test_key_required_refuses_tokens(client: Any, user: Any, issue: Callable[..., str]) -> None:
    response = client.get("/keys-only", headers=auth(issue(user)))
    assert response.status_code == 401
    assert client.get("/keys-only").status_code == 401


def test_a_token_with_a_key_prefix_but_token_row_is_refused(app: Flask, client: Any, user: Any,
                                                           issue: Callable[..., str]) -> None:
    token = issue(user)
    forged = "apk_" + token[4:]  # same id and secret, other prefix: checksum fails first
    assert client.get("/plain", headers=auth(forged, "key")).status_code == 401


def test_login_or_token_required_takes_a_session_or_a_token(client: Any, user: Any, issue: Callable[..., str]) -> None:
    assert client.get("/either").status_code == 401
    token = issue(user)
    assert client.get("/either", headers=auth(token)).json == {"user": "alice", "token": token.split(":")[0][4:]}
    login(client)
    assert client.get("/either").json == {"user": "alice", "token": None}


def test_a_bad_token_is_refused_even_with_a_session(client: Any, user: Any) -> None:
    login(client)
    assert client.get("/either", headers=auth("apt_bogus")).status_code == 401


def test_flask_login_views_accept_tokens_with_login_through_the_request_loader(client: Any, user: Any,
                                                                              issue: Callable[..., str]) -> None:
    assert client.get("/flask-login", headers=auth(issue(user, scopes=["login"]))).json == {"user": "alice"}
    assert client.get("/flask-login", headers=auth(issue(user))).status_code == 401  # no login scope: no user
    assert client.get("/flask-login", headers=auth("apt_bogus")).status_code == 401


def test_request_loader_chains_to_the_hosts_own(make_app: Callable[..., Flask]) -> None:
    def answer(header: str) -> Any:
        return hostapp.db.session.get(hostapp.User, 1) if header == "Basic host-owned" else None

    with host_request_loader(answer) as calls:
        app = make_app()
        with app.app_context():
            hostapp.make_user("alice")
            client = app.test_client()
            assert client.get("/flask-login", headers={"Authorization": "Basic host-owned"}).json == {"user": "alice"}
            assert client.get("/flask-login", headers={"Authorization": "Basic other"}).status_code == 401
            assert calls == ["Basic host-owned", "Basic other"]


def test_current_token_is_falsy_for_sessions_and_names_the_token_otherwise(app: Flask, user: Any,
                                                                           issue: Callable[..., str]) -> None:
    with app.test_request_context("/"):
        assert not current_token
        assert get_current_token() is None
    token = issue(user, name="named")
    with app.test_request_context("/", headers=auth(token)):
        from flask_apitokens.decorators import require_credential

        require_credential(frozenset())
        assert current_token.name == "named"
        assert current_user.username == "alice"


def test_the_user_is_not_loaded_unless_the_view_asks(make_app: Callable[..., Flask]) -> None:
    from flask_apitokens import token_required

    app = make_app()

    @app.get("/no-user")
    @token_required
    def no_user() -> Any:
        return jsonify(token=current_token.id)

    with app.app_context():
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("carol"), via="cli").token
        loads: list[Any] = []
        store = app.extensions["apitokens"].users
        original, from_row = store.get, store.user_from_row
        store.get = lambda user_id: loads.append(("get", user_id)) or original(user_id)  # type: ignore[method-assign]
        store.user_from_row = (  # type: ignore[method-assign]
            lambda row, dialect: loads.append(("row", row[0])) or from_row(row, dialect))
        try:
            assert app.test_client().get("/no-user", headers=auth(token)).status_code == 200
            assert loads == []
            assert app.test_client().get("/plain", headers=auth(token)).status_code == 200
            assert loads == []
            assert app.test_client().get("/either", headers=auth(token)).json["user"] == "carol"
            # The view read current_user: made once, from the row the check read (no ORM load).
            assert len(loads) == 1 and loads[0][0] == "row"
        finally:
            store.get, store.user_from_row = original, from_row  # type: ignore[method-assign]


def test_read_authorization() -> None:
    assert read_authorization("Token  abc ") == ("token", "abc")
    assert read_authorization("Basic abc") is None
    assert read_authorization("") is None
    assert read_authorization("bearer") == ("bearer", "")


header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=300)


@fixture_ok
@given(scheme=st.sampled_from(["token", "key", "Bearer", "Basic", "", "tOkEn"]), value=header_text)
def test_arbitrary_authorization_headers_never_500(client: Any, scheme: str, value: str) -> None:
    header = f"{scheme} {value}" if scheme else value
    try:
        response = client.get("/plain", headers={"Authorization": header})
    except ValueError:
        return  # the test client itself refuses header bytes no server would pass on (CR, LF)
    assert response.status_code == 401
    assert response.is_json


@fixture_ok
@given(body=st.binary(max_size=600), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]))
def test_arbitrary_bodies_never_500(client: Any, body: bytes, content_type: str) -> None:
    for path in ("/api/authenticate/userpass", "/api/api_tokens", "/api/token"):
        response = client.post(path, data=body, content_type=content_type)
        assert response.status_code in (400, 401, 403, 413, 415, 429), (path, response.status_code)
        assert response.is_json


@fixture_ok
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                    max_size=3), max_leaves=10))
def test_arbitrary_json_never_500(client: Any, body: Any) -> None:
    for path in ("/api/authenticate/userpass", "/api/api_tokens", "/api/token", "/api/tokens/x/rotate"):
        response = client.post(path, json=body)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.is_json


def test_flask_login_set_up_after_the_extension_still_gets_the_loader(tmp_path: Any) -> None:
    from flask_login import LoginManager, login_required

    from flask_apitokens import APITokens

    app = Flask(__name__)
    app.config.update(SECRET_KEY="a secret key for tests", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/late.db")
    hostapp.db.init_app(app)
    APITokens(app, db=hostapp.db, user_model=hostapp.User)
    late = LoginManager()
    late.user_loader(lambda user_id: hostapp.db.session.get(hostapp.User, int(user_id)))
    late.init_app(app)

    @app.get("/who")
    @login_required
    def who() -> Any:
        return jsonify(user=current_user.username)

    with app.app_context():
        hostapp.db.create_all()
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("late"), via="cli", scopes=["login"]).token
        assert app.test_client().get("/who", headers=auth(token)).json == {"user": "late"}
        # The set-up hooks ran once and are gone: host requests do not pay for them.
        assert not [hook for hook in app.before_request_funcs.get(None, [])
                    if hook.__module__.startswith("flask_apitokens")]
        assert app.test_client().get("/who", headers=auth(token)).json == {"user": "late"}
        hostapp.db.session.remove()
        hostapp.db.drop_all()
        hostapp.db.engine.dispose()
