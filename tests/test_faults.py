"""The database fails underneath: 503 JSON while it is gone, nothing half
written, correct service when it is back.

PostgreSQL is reached through a TCP proxy on loopback that the tests cut (the
server is unreachable), turn into a black hole (it hangs: the connect timeout
ends the wait) and restore. SQLite is locked by another connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests import hostapp
from tests.helpers import POSTGRES_URL, AppContextPerRequestClient, auth, login, need
from tests.proxy_server import TCPProxy

CONNECT_TIMEOUT = 2


def row_counts(url: str) -> dict[str, Any]:
    """Rows as the database itself has them, read past the proxy."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "tokens": conn.execute(sa.text("SELECT count(*) FROM apitokens_token")).scalar(),
                "revoked": conn.execute(
                    sa.text("SELECT count(*) FROM apitokens_token WHERE revoked_at IS NOT NULL")).scalar(),
                "users": conn.execute(sa.text("SELECT count(*) FROM users")).scalar(),
            }
    finally:
        engine.dispose()


@pytest.fixture
def proxied() -> Iterator[tuple[Flask, TCPProxy, str]]:
    """An app whose database connections go through a proxy to PostgreSQL."""
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL to a PostgreSQL database for the fault tests")
    url = sa.engine.make_url(POSTGRES_URL)
    with TCPProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = hostapp.create_app(
            through, APITOKENS_LAST_USED_INTERVAL=0, RATELIMIT_ENABLED=False,
            SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": CONNECT_TIMEOUT}},
        )
        app.test_client_class = AppContextPerRequestClient
        with app.app_context():
            hostapp.db.drop_all()
            hostapp.db.create_all()
            try:
                yield app, proxy, POSTGRES_URL
            finally:
                proxy.restore()
                hostapp.db.session.remove()
                hostapp.db.engine.dispose()
                hostapp.db.drop_all()
                hostapp.db.engine.dispose()


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json
    assert response.json["error"] == "service_unavailable"


def requests_while_down(client: Any, cookie_client: Any, manager: str, victim_id: str) -> list[Any]:
    """Token check (ours and Flask-Login's), issue (two ways), revoke, list and /me,
    while the store is gone."""
    return [
        client.get("/plain", headers=auth(manager)),
        client.get("/api/me", headers=auth(manager)),
        client.get("/flask-login", headers=auth(manager)),  # the host's @login_required, via the request loader
        client.post("/api/authenticate/userpass", json={"username": "alice", "password": "pw-correct"}),
        client.post("/api/api_tokens", json={"email": "alice@example.com", "password": "pw-correct"}),
        cookie_client.post("/api/token", json={"name": "during the outage"}),
        cookie_client.get("/api/me"),
        client.delete(f"/api/tokens/{victim_id}", headers=auth(manager)),
        client.delete("/api/tokens", headers=auth(manager)),
        client.get("/api/tokens", headers=auth(manager)),
        client.post(f"/api/tokens/{victim_id}/rotate", headers=auth(manager)),
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["cut", "blackhole"])
def test_postgresql_unreachable_then_back(proxied: tuple[Flask, TCPProxy, str], fault: str) -> None:
    app, proxy, direct_url = proxied
    service = app.extensions["apitokens"].service
    user = hostapp.make_user("alice")
    manager = service.issue(user, via="cli", scopes=["tokens"]).token
    victim = service.issue(user, via="cli", name="victim")
    client, cookie_client = app.test_client(), app.test_client()
    login(cookie_client)
    assert client.get("/plain", headers=auth(manager)).status_code == 200
    before = row_counts(direct_url)

    getattr(proxy, fault)()
    started = time.monotonic()
    for response in requests_while_down(client, cookie_client, manager, victim.info.id):
        assert_unavailable(response)
    # Hanging connections are ended by the connect timeout, not left to hang.
    assert time.monotonic() - started < 12 * (CONNECT_TIMEOUT + 1.5)
    assert row_counts(direct_url) == before  # nothing written, nothing half-written

    proxy.restore()
    assert client.get("/plain", headers=auth(manager)).status_code == 200
    assert cookie_client.get("/api/me").status_code == 200
    issued = client.post("/api/authenticate/userpass", json={"username": "alice", "password": "pw-correct"})
    assert issued.status_code == 200
    assert client.get("/plain", headers=auth(issued.json["token"])).status_code == 200
    assert client.delete(f"/api/tokens/{victim.info.id}", headers=auth(manager)).json["revoked"] == [victim.info.id]
    assert client.get("/plain", headers=auth(victim.token)).status_code == 401
    after = row_counts(direct_url)
    assert after == {**before, "tokens": before["tokens"] + 1, "revoked": before["revoked"] + 1}


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ["INSERT", "UPDATE"])
def test_cut_in_the_middle_of_a_rotation_writes_nothing(proxied: tuple[Flask, TCPProxy, str], statement: str) -> None:
    """Rotation inserts the new token and shortens the old one in one transaction:
    the connection dies after one of its statements, and neither stays."""
    app, proxy, direct_url = proxied
    service = app.extensions["apitokens"].service
    user = hostapp.make_user("alice")
    manager = service.issue(user, via="cli", scopes=["tokens"])
    before = row_counts(direct_url)
    old_expiry = service.get(manager.info.id).expires_at
    # The request works in a session of its own: hold no connection the cut would break.
    hostapp.db.session.remove()

    def cut_after(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith(statement) and "apitokens_token" in sql:
            proxy.cut()

    sa.event.listen(hostapp.db.engine, "after_cursor_execute", cut_after)
    try:
        response = app.test_client().post(f"/api/tokens/{manager.info.id}/rotate", headers=auth(manager.token))
    finally:
        sa.event.remove(hostapp.db.engine, "after_cursor_execute", cut_after)
    assert proxy.cuts == 1
    assert_unavailable(response)
    assert row_counts(direct_url) == before

    proxy.restore()
    hostapp.db.session.expire_all()
    assert service.get(manager.info.id).expires_at == old_expiry
    again = app.test_client().post(f"/api/tokens/{manager.info.id}/rotate", headers=auth(manager.token))
    assert again.status_code == 200
    assert row_counts(direct_url)["tokens"] == before["tokens"] + 1


@pytest.mark.postgres
def test_cut_in_the_middle_of_revoking_a_family_revokes_none(proxied: tuple[Flask, TCPProxy, str]) -> None:
    app, proxy, direct_url = proxied
    service = app.extensions["apitokens"].service
    user = hostapp.make_user("alice")
    manager = service.issue(user, via="cli", scopes=["tokens"])
    others = [service.issue(user, via="cli", name=f"t{i}") for i in range(3)]

    def cut_after(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith("UPDATE") and "revoked_at" in sql:
            proxy.cut()

    sa.event.listen(hostapp.db.engine, "after_cursor_execute", cut_after)
    try:
        response = app.test_client().delete("/api/tokens", headers=auth(manager.token))
    finally:
        sa.event.remove(hostapp.db.engine, "after_cursor_execute", cut_after)
    assert_unavailable(response)
    assert row_counts(direct_url)["revoked"] == 0
    proxy.restore()
    for issued in [manager, *others]:
        assert app.test_client().get("/plain", headers=auth(issued.token)).status_code == 200
    assert len(app.test_client().delete("/api/tokens", headers=auth(manager.token)).json["revoked"]) == 4


def test_sqlite_locked_gives_503_then_recovers(tmp_path: Any) -> None:
    path = tmp_path / "locked.sqlite3"
    app = hostapp.create_app(f"sqlite:///{path}", RATELIMIT_ENABLED=False, APITOKENS_LAST_USED_INTERVAL=0,
                             SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.2}})
    app.test_client_class = AppContextPerRequestClient
    with app.app_context():
        hostapp.db.create_all()
        user = hostapp.make_user("alice")
        manager = app.extensions["apitokens"].service.issue(user, via="cli", scopes=["tokens"])
        hostapp.db.session.remove()
        client = app.test_client()
        assert client.get("/plain", headers=auth(manager.token)).status_code == 200

        locker = sqlite3.connect(path, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            assert_unavailable(client.get("/plain", headers=auth(manager.token)))
            assert_unavailable(client.post("/api/authenticate/userpass",
                                           json={"username": "alice", "password": "pw-correct"}))
            assert_unavailable(client.get("/api/tokens", headers=auth(manager.token)))
            assert_unavailable(client.delete("/api/tokens", headers=auth(manager.token)))
        finally:
            locker.rollback()
            locker.close()

        assert client.get("/plain", headers=auth(manager.token)).status_code == 200
        assert client.post("/api/authenticate/userpass",
                           json={"username": "alice", "password": "pw-correct"}).status_code == 200
        assert len(client.get("/api/tokens", headers=auth(manager.token)).json["tokens"]) == 2
        hostapp.db.session.remove()
        hostapp.db.engine.dispose()


def test_sqlite_checks_leave_no_read_transaction_open(tmp_path: Any) -> None:
    # The check's connections are kept (and their cursors reused) between
    # requests: an SQLite read left open would hold a shared lock that keeps
    # every writer of the file waiting.
    path = tmp_path / "reads.sqlite3"
    app = hostapp.create_app(f"sqlite:///{path}", RATELIMIT_ENABLED=False)
    app.test_client_class = AppContextPerRequestClient
    with app.app_context():
        hostapp.db.create_all()
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
        hostapp.db.session.remove()
        client = app.test_client()
        unknown = app.extensions["apitokens"].service.issue(hostapp.make_user("bob"), via="cli").token
        hostapp.db.session.remove()
        public_id = unknown.split(":")[0][-12:]
        with hostapp.db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM apitokens_token WHERE id = ?", (public_id,))
        assert client.get("/plain", headers=auth(token)).status_code == 200
        assert client.get("/plain", headers=auth(token)).status_code == 200
        assert client.get("/plain", headers=auth(unknown)).status_code == 401

        writer = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")  # "database is locked" if a read were still open
            writer.execute("UPDATE users SET active = active")
            writer.execute("COMMIT")
        finally:
            writer.close()
        hostapp.db.engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_error_that_is_no_disconnect_leaves_the_pool_alone(make_app: Any) -> None:
    # A lock timeout is an error of the statement, not of the connection: 503,
    # but the host's pool must not be thrown away as after a lost connection.
    app = make_app(RATELIMIT_ENABLED=False,
                   SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": "-c lock_timeout=200"}})
    with app.app_context():
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
        hostapp.db.session.remove()
        client = app.test_client()
        assert client.get("/plain", headers=auth(token)).status_code == 200
        engine = hostapp.db.engine
        invalidated = engine.pool._invalidate_time  # when the pool last dropped its connections
        with engine.connect() as locker:
            locker.exec_driver_sql("LOCK TABLE apitokens_token IN ACCESS EXCLUSIVE MODE")
            assert_unavailable(client.get("/plain", headers=auth(token)))
            locker.rollback()
        assert engine.pool._invalidate_time == invalidated
        assert client.get("/plain", headers=auth(token)).status_code == 200
