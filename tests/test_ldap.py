"""POST /api/authenticate/ldap against a real slapd (tests/ldap_server.py)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from flask_apitokens.ldap_directory import bind
from tests.helpers import auth, token_rows
from tests.hostapp import User, db, make_user
from tests.ldap_server import (  # noqa: F401  (fixtures)
    BASE_DN,
    GROUPS_DN,
    PEOPLE_DN,
    USER_PASSWORD,
    Slapd,
    own_slapd,
    silent_server,
    slapd,
)

URL = "/api/authenticate/ldap"
DEVELOPERS = f"cn=developers,{GROUPS_DN}"
ADMINS = f"cn=admins,{GROUPS_DN}"
GROUP_CONFIG = {
    "APITOKENS_LDAP_GROUP_SCOPES": {DEVELOPERS: ["reports:read"], ADMINS: ["reports:read", "reports:write"]},
    # Another spelling of the same DN: group DNs are compared normalised.
    "APITOKENS_LDAP_ADMIN_GROUPS": [f"CN=Admins, OU=groups, {BASE_DN}"],
}


@pytest.fixture
def ldap_app(make_app: Callable[..., Flask], slapd: Slapd) -> Callable[..., Flask]:  # noqa: F811
    """ldap_app(**config): an app (context pushed) using the module's slapd."""
    contexts: list[Any] = []

    def build(**config: Any) -> Flask:
        app = make_app(**{**slapd.config, "APITOKENS_LDAP_TIMEOUT": 2, **config})
        context = app.app_context()
        context.push()
        contexts.append(context)
        return app

    yield build  # type: ignore[misc]
    for context in reversed(contexts):
        context.pop()


def login(app: Flask, username: str, password: str = USER_PASSWORD, *, json: bool = False, **fields: Any) -> Any:
    body = {"username": username, "password": password, **fields}
    client = app.test_client()
    return client.post(URL, json=body) if json else client.post(URL, data=body)


def users() -> list[User]:
    db.session.expire_all()
    return list(db.session.execute(sa.select(User).order_by(User.id)).scalars())


def identities(app: Flask) -> list[Any]:
    Identity = app.extensions["apitokens"].models.Identity
    db.session.expire_all()
    return list(db.session.execute(sa.select(Identity).order_by(Identity.id)).scalars())


def entry_uuid(server: Slapd, uid: str) -> str:
    with server.admin() as conn:
        conn.search(PEOPLE_DN, f"(uid={uid})", attributes=["entryUUID"])
        return str(conn.entries[0].entryUUID.value)


def unique(prefix: str) -> str:
    """A uid no other test (or database run) of this module's slapd uses."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# -- first and later logins ---------------------------------------------------------


def test_first_login_creates_the_user_and_the_link(ldap_app: Callable[..., Flask], slapd: Slapd) -> None:  # noqa: F811
    app = ldap_app(APITOKENS_LDAP_EXPIRES_IN=3600)
    before = dt.datetime.now(dt.timezone.utc)
    response = login(app, "dora")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"token", "expiresOn"}
    assert response.headers["Cache-Control"] == "no-store"
    expires = dt.datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00"))
    assert before + dt.timedelta(seconds=3590) < expires < before + dt.timedelta(seconds=3610)

    [user] = users()
    assert (user.username, user.email, user.password_hash, user.is_admin) == ("dora", "dora@example.org", None, False)
    [link] = identities(app)
    assert (link.user_id, link.provider, link.email) == (user.id, "ldap", "dora@example.org")
    assert link.subject == entry_uuid(slapd, "dora")
    [row] = token_rows(app)
    assert (row.user_id, row.via, row.kind, row.scopes) == (user.id, "ldap", "token", "")

    me = app.test_client().get("/api/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.get_json()["username"] == "dora"
    assert me.get_json()["token"]["via"] == "ldap"


def test_second_login_reuses_the_user(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    first = login(app, "dora", name="laptop")
    second = login(app, "DORA", json=True)  # the directory matches uid case-insensitively
    assert first.status_code == second.status_code == 200
    assert first.get_json()["token"] != second.get_json()["token"]
    [user] = users()
    assert len(identities(app)) == 1
    rows = token_rows(app)
    assert len(rows) == 2 and {row.user_id for row in rows} == {user.id}
    assert sorted(row.name for row in rows) == ["", "laptop"]
    assert user.username == "dora"


def test_mail_name_and_dn_changes_keep_the_same_user(ldap_app: Callable[..., Flask], slapd: Slapd) -> None:  # noqa: F811
    app = ldap_app()
    uid = unique("mira")
    dn = slapd.add_person(uid, "Mira Moved", f"{uid}@example.org")
    assert login(app, uid).status_code == 200
    [user] = users()
    assert user.email == f"{uid}@example.org"

    slapd.replace(dn, mail=f"{uid}@new.example.org", displayName="Mira Renamed")
    new_uid = f"{uid}x"
    slapd.rename(dn, f"uid={new_uid}")  # a new DN and a new login name, the same entry
    response = login(app, new_uid)
    assert response.status_code == 200, response.get_json()

    [same] = users()
    assert same.id == user.id
    assert same.email == f"{uid}@new.example.org"
    assert same.username == uid  # the local name stays; only email and display name follow
    [link] = identities(app)
    assert link.email == f"{uid}@new.example.org"
    assert {row.user_id for row in token_rows(app)} == {user.id}
    assert login(app, uid).status_code == 401  # the old login name is gone from the directory


# Concurrent writers need PostgreSQL (SQLite serialises them with "database is locked").
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_first_logins_make_one_user(ldap_app: Callable[..., Flask], slapd: Slapd,  # noqa: F811
                                               database_url: str) -> None:
    app = ldap_app()
    uid = unique("cora")
    slapd.add_person(uid, "Cora Concurrent", f"{uid}@example.org")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}{URL}"
        barrier = threading.Barrier(6)

        def one_login(_: int) -> int:
            barrier.wait()
            return requests.post(url, data={"username": uid, "password": USER_PASSWORD}, timeout=30).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(one_login, range(6)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert statuses == [200] * 6
    [user] = users()
    assert user.username == uid
    assert len(identities(app)) == 1
    assert len(token_rows(app)) == 6


# -- refusals ---------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_401(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    wrong = login(app, "dora", "not-the-password")
    unknown = login(app, "nobody-here")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"]
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"] == "invalid_credentials"
    assert users() == [] and identities(app) == [] and token_rows(app) == []


@pytest.mark.parametrize("username", [
    "*", "a*", "*)(uid=*", "ad*", "*a", "ada)(|(uid=*", "\\", "ada\\", "\\2a", "ada\x00", "\x00",
    f"ada,{PEOPLE_DN}", f"uid=ada,{PEOPLE_DN}", "ada,ou=people", "ada+cn=x", "ada;", "<ada>", '"ada"', "#ada",
    "ada\n", "(uid=ada)", "\udcff",
])
def test_filter_and_dn_injection_finds_nobody(ldap_app: Callable[..., Flask], username: str) -> None:
    # ada's password is the shared one, so any filter that matched her would bind.
    app = ldap_app()
    response = login(app, username, json=True)
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"] == "invalid_credentials"
    assert users() == [] and token_rows(app) == []


def test_nul_in_a_form_field_is_a_failed_login(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    assert login(app, "ada\x00").status_code == 401
    assert login(app, "ada", USER_PASSWORD + "\x00").status_code == 401
    assert token_rows(app) == []


def test_missing_fields_and_bad_options_are_400(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    client = app.test_client()
    assert client.post(URL, json={"password": "x"}).get_json()["error"] == "missing_field"
    assert client.post(URL, data={"username": "dora"}).get_json()["error"] == "missing_field"
    response = client.post(URL, json={"username": ["dora"], "password": USER_PASSWORD})
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_field")
    response = login(app, "dora", scopes=["no-such-scope"], json=True)
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_scope")
    response = login(app, "dora", expires_in="soon")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_field")
    assert users() == [] and token_rows(app) == []


def test_existing_local_account_is_not_taken_over(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    local = make_user("carl", email="carl@local.example")
    response = login(app, "carl")
    assert (response.status_code, response.get_json()["error"]) == (409, "account_conflict")
    assert identities(app) == [] and token_rows(app) == []
    assert [u.id for u in users()] == [local.id]


def test_deactivated_local_user_is_refused(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    assert login(app, "dora").status_code == 200
    [user] = users()
    user.active = False
    db.session.commit()
    response = login(app, "dora")
    assert (response.status_code, response.get_json()["error"]) == (401, "invalid_credentials")
    assert len(token_rows(app)) == 1


def test_directory_user_is_refused_by_the_password_routes(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    assert login(app, "dora").status_code == 200
    client = app.test_client()
    userpass = client.post("/api/authenticate/userpass", data={"username": "dora", "password": USER_PASSWORD})
    exchange = client.post("/api/api_tokens", json={"email": "dora@example.org", "password": USER_PASSWORD})
    wrong = client.post("/api/authenticate/userpass", data={"username": "nobody", "password": "x"})
    for response in (userpass, exchange):
        assert response.status_code == 401
        assert response.get_json() == wrong.get_json()
    assert len(token_rows(app)) == 1


# -- groups -> scopes and administrators ------------------------------------------------


def scopes_of(app: Flask, response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    info = app.extensions["apitokens"].service.authenticate(response.get_json()["token"], scheme="token")
    return sorted(info.scopes)


def test_groups_grant_scopes_and_the_admin_flag(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app(**GROUP_CONFIG)
    assert scopes_of(app, login(app, "dora")) == ["reports:read"]
    assert scopes_of(app, login(app, "ada")) == ["reports:read", "reports:write"]
    assert scopes_of(app, login(app, "carl")) == []
    admin = {u.username: u.is_admin for u in users()}
    assert admin == {"dora": False, "ada": True, "carl": False}

    token = login(app, "dora").get_json()["token"]
    reports = app.test_client().get("/reports", headers=auth(token))
    assert reports.status_code == 200 and reports.get_json()["user"] == "dora"


def test_requested_scopes_must_be_granted_by_the_groups(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app(**GROUP_CONFIG)
    assert scopes_of(app, login(app, "ada", scopes="reports:read")) == ["reports:read"]
    assert scopes_of(app, login(app, "carl", scopes="tokens")) == ["tokens"]  # the built-in scope is one's own
    count = len(token_rows(app))
    refused = login(app, "dora", scopes="reports:read reports:write")
    assert (refused.status_code, refused.get_json()["error"]) == (403, "insufficient_scope")
    assert refused.get_json()["message"] == "Your directory groups do not grant the scope 'reports:write'."
    unknown = login(app, "dora", scopes="reports:delete")
    assert (unknown.status_code, unknown.get_json()["error"]) == (400, "invalid_scope")
    assert len(token_rows(app)) == count


def test_admin_flag_follows_group_membership(ldap_app: Callable[..., Flask], slapd: Slapd) -> None:  # noqa: F811
    app = ldap_app(**GROUP_CONFIG)
    uid = unique("gus")
    slapd.add_person(uid, "Gus Group", f"{uid}@example.org")
    slapd.add_member("admins", uid)
    assert scopes_of(app, login(app, uid)) == ["reports:read", "reports:write"]
    assert users()[0].is_admin is True
    slapd.delete_member("admins", uid)
    assert scopes_of(app, login(app, uid)) == []
    assert users()[0].is_admin is False


def test_without_a_group_mapping_any_declared_scope_and_no_group_search(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app()
    assert app.config["LDAP_SEARCH_FOR_GROUPS"] is False
    assert scopes_of(app, login(app, "carl", scopes=["reports:write"])) == ["reports:write"]
    assert users()[0].is_admin is False  # not managed without APITOKENS_LDAP_ADMIN_GROUPS


# -- configuration, secrets ---------------------------------------------------------------


def test_route_is_absent_without_ldap_host(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    with app.app_context():
        response = app.test_client().post(URL, data={"username": "dora", "password": USER_PASSWORD})
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"
        assert not hasattr(app, "ldap3_login_manager")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("APITOKENS_LDAP_GROUP_SCOPES", {DEVELOPERS: ["reports:delete"]}, "undeclared scope 'reports:delete'"),
    ("APITOKENS_LDAP_GROUP_SCOPES", {DEVELOPERS: "reports:read"}, "expected group DN -> list of scopes"),
    ("APITOKENS_LDAP_ADMIN_GROUPS", [1], "expected a list of group DNs"),
])
def test_bad_group_settings_stop_the_app(make_app: Callable[..., Flask], slapd: Slapd,  # noqa: F811
                                         key: str, value: Any, message: str) -> None:
    with pytest.raises(RuntimeError, match=message) as raised:
        make_app(**slapd.config, **{key: value})
    assert key in str(raised.value)


def test_extension_works_without_flask_ldap3_login() -> None:
    # The "ldap" extra is optional: without it, no route; with LDAP_HOST set, a clear error.
    script = (
        "import sys; sys.modules['ldap3'] = sys.modules['flask_ldap3_login'] = None\n"
        "from tests import hostapp\n"
        "app = hostapp.create_app('sqlite://')\n"
        "assert '/api/authenticate/ldap' not in {r.rule for r in app.url_map.iter_rules()}\n"
        "try:\n"
        "    hostapp.create_app('sqlite://', LDAP_HOST='127.0.0.1')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert "flask-ldap3-login is not installed" in done.stdout


def test_user_attributes_never_include_the_password_hash(ldap_app: Callable[..., Flask]) -> None:
    app = ldap_app(**GROUP_CONFIG)
    result = bind(app, "ada", USER_PASSWORD)
    assert result is not None
    assert "userPassword" not in result.user_info
    assert {"uid", "mail", "entryUUID"} <= set(result.user_info)
    assert {group["dn"] for group in result.user_groups} == {DEVELOPERS, ADMINS}


def test_passwords_are_never_logged(ldap_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    app = ldap_app()
    caplog.set_level(logging.DEBUG)
    assert login(app, "dora").status_code == 200
    assert login(app, "dora", "wrong-Pa55word").status_code == 401
    assert "flask_ldap3_login" in {record.name for record in caplog.records}  # it did log, at debug level
    assert USER_PASSWORD not in caplog.text and "wrong-Pa55word" not in caplog.text


# -- an unreachable directory --------------------------------------------------------------

TIMEOUT = 1.0


def unavailable_login(app: Flask) -> float:
    """Log in while the directory cannot answer: 503 ldap_unavailable, nothing
    written. Returns the seconds it took."""
    began = time.monotonic()
    response = login(app, "dora")
    elapsed = time.monotonic() - began
    assert response.status_code == 503
    assert response.get_json() == {"error": "ldap_unavailable",
                                   "message": "The LDAP directory is unavailable; try again shortly."}
    return elapsed


def test_stopped_directory_gives_503_at_once_and_recovers(make_app: Callable[..., Flask],
                                                          own_slapd: Slapd) -> None:  # noqa: F811
    app = make_app(**own_slapd.config, APITOKENS_LDAP_TIMEOUT=TIMEOUT)
    with app.app_context():
        assert login(app, "dora").status_code == 200
        own_slapd.stop()
        assert unavailable_login(app) < TIMEOUT
        assert len(token_rows(app)) == 1
        own_slapd.run()  # the same port: no 10 s "server offline" memory in the pool
        assert login(app, "dora").status_code == 200
        assert len(token_rows(app)) == 2


def test_silent_directory_gives_503_within_the_timeout(make_app: Callable[..., Flask],
                                                       silent_server: int) -> None:  # noqa: F811
    app = make_app(LDAP_HOST="127.0.0.1", LDAP_PORT=silent_server, LDAP_BASE_DN=BASE_DN,
                   APITOKENS_LDAP_TIMEOUT=TIMEOUT)
    with app.app_context():
        assert TIMEOUT * 0.9 < unavailable_login(app) < TIMEOUT + 1.0  # one receive timeout, not several
        assert users() == [] and token_rows(app) == []


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener with a full accept queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(8):  # fill the queue; later connects then hang in SYN-SENT
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_connect_that_hangs_gives_503_within_the_timeout(make_app: Callable[..., Flask],
                                                         unanswered_port: int) -> None:
    app = make_app(LDAP_HOST="127.0.0.1", LDAP_PORT=unanswered_port, LDAP_BASE_DN=BASE_DN,
                   APITOKENS_LDAP_TIMEOUT=TIMEOUT)
    with app.app_context():
        assert unavailable_login(app) < TIMEOUT + 1.0
        assert users() == [] and token_rows(app) == []
