"""No speed bought with correctness: two app instances (two "processes") share
one database; what one does to a token, the other sees on the very next
request, and the last-used write stays throttled across both.

Runs on a SQLite file, on PostgreSQL, and on PostgreSQL through PgBouncer in
transaction mode (``tests/pgbouncer_server.py``), with each app's engine as it
comes: the extension's own statements must not depend on a server session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify

from flask_apitokens import errors, signals
from flask_apitokens.models import utcnow
from flask_apitokens.web import error_response
from tests import hostapp
from tests.helpers import auth, database_urls, resolve_database_url


@pytest.fixture(params=database_urls(pgbouncer=True))
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return resolve_database_url(request, tmp_path)


class Pair:
    """Two apps on one database: ``a`` issues and changes, ``b`` checks."""

    def __init__(self, a: Flask, b: Flask) -> None:
        self.a, self.b = a, b
        self.client_a, self.client_b = a.test_client(), b.test_client()
        with a.app_context():
            user = hostapp.make_user("alice")
            self.user_id = user.id
            self.token = a.extensions["apitokens"].service.issue(user, via="cli", scopes=["reports:read"]).token
        self.public_id = self.token.split(":")[0][-12:]

    def get_b(self) -> Any:
        return self.client_b.get("/reports", headers=auth(self.token))

    def get_a(self) -> Any:
        return self.client_a.get("/reports", headers=auth(self.token))

    def in_a(self, statement: Any) -> None:
        """Run a write through app ``a``'s ORM session, and commit it."""
        with self.a.app_context():
            hostapp.db.session.execute(statement)
            hostapp.db.session.commit()

    def set_token(self, **values: Any) -> None:
        T = self.a.extensions["apitokens"].models.Token
        self.in_a(sa.update(T).where(T.id == self.public_id).values(**values))

    def row(self) -> Any:
        with self.a.app_context():
            T = self.a.extensions["apitokens"].models.Token
            return hostapp.db.session.execute(sa.select(T).where(T.id == self.public_id)).scalar_one()


@pytest.fixture
def pair(make_app: Callable[..., Flask]) -> Pair:
    return Pair(make_app(), make_app())


@pytest.fixture
def used() -> Iterator[list[str]]:
    """The token ids of every ``token_used`` signal (one per last-used write)."""
    seen: list[str] = []

    def receiver(sender: Any, token: Any, **extra: Any) -> None:
        seen.append(token.id)

    signals.token_used.connect(receiver)
    yield seen
    signals.token_used.disconnect(receiver)


def test_both_apps_accept_the_same_token(pair: Pair) -> None:
    for response in (pair.get_a(), pair.get_b()):
        assert response.status_code == 200
        assert response.json == {"reports": [1, 2, 3], "user": "alice", "token": pair.public_id}


def test_revoked_through_one_is_refused_by_the_other_at_once(pair: Pair) -> None:
    assert pair.get_b().status_code == 200  # b has checked it (and holds a connection)
    with pair.a.app_context():
        revoked = pair.a.extensions["apitokens"].service.revoke([pair.public_id], user_id=pair.user_id)
    assert revoked == [pair.public_id]
    response = pair.get_b()
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert "WWW-Authenticate" in response.headers
    assert pair.row().revoked_at is not None


def test_revoked_over_http_through_one_is_refused_by_the_other(pair: Pair) -> None:
    assert pair.get_b().status_code == 200
    with pair.a.app_context():
        # A second token with the built-in ``tokens`` scope revokes the first through a's API.
        user = hostapp.db.session.get(hostapp.User, pair.user_id)
        manager = pair.a.extensions["apitokens"].service.issue(user, via="cli", scopes=["tokens"]).token
    response = pair.client_a.delete(f"/api/tokens/{pair.public_id}", headers=auth(manager))
    assert response.status_code == 200
    assert response.json == {"revoked": [pair.public_id]}
    assert pair.get_b().status_code == 401


def test_expired_through_one_is_refused_by_the_other_at_once(pair: Pair) -> None:
    assert pair.get_b().status_code == 200
    pair.set_token(expires_at=utcnow() - dt.timedelta(seconds=1))
    response = pair.get_b()
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_deactivated_user_through_one_is_refused_by_the_other_and_back(pair: Pair) -> None:
    assert pair.get_b().status_code == 200
    pair.in_a(sa.update(hostapp.User).where(hostapp.User.id == pair.user_id).values(active=False))
    assert pair.get_b().status_code == 401
    assert pair.get_a().status_code == 401
    # Nothing negative is remembered either: reactivated, accepted on the next request.
    pair.in_a(sa.update(hostapp.User).where(hostapp.User.id == pair.user_id).values(active=True))
    assert pair.get_b().status_code == 200


def test_deleted_token_row_is_refused_by_the_other(pair: Pair) -> None:
    assert pair.get_b().status_code == 200
    T = pair.a.extensions["apitokens"].models.Token
    pair.in_a(sa.delete(T).where(T.id == pair.public_id))
    assert pair.get_b().status_code == 401


def test_last_used_is_written_once_per_interval_across_apps(pair: Pair, used: list[str]) -> None:
    assert pair.row().last_used_at is None
    before = utcnow()
    for _ in range(5):
        assert pair.get_a().status_code == 200
        assert pair.get_b().status_code == 200
    first = pair.row()
    assert used == [pair.public_id]  # one write for ten requests through two apps
    assert first.last_used_at is not None and first.last_used_at >= before - dt.timedelta(seconds=1)
    assert first.last_used_ip == "127.0.0.1"
    # Once the interval (300 s by default) has passed, the next request writes again, once.
    stale = utcnow() - dt.timedelta(seconds=301)
    pair.set_token(last_used_at=stale)
    for _ in range(3):
        assert pair.get_b().status_code == 200
        assert pair.get_a().status_code == 200
    assert used == [pair.public_id, pair.public_id]
    assert pair.row().last_used_at > stale + dt.timedelta(seconds=300)


def test_racing_writers_write_once(pair: Pair, used: list[str]) -> None:
    """Two processes that both read a stale last-used time: the conditional
    UPDATE lets only the first one write."""
    stale = utcnow() - dt.timedelta(seconds=600)
    pair.set_token(last_used_at=stale)
    services = [app.extensions["apitokens"].service for app in (pair.a, pair.b)]
    with pair.a.app_context():
        info = pair.a.extensions["apitokens"].service.info(pair.row())
    now = utcnow()
    for service, app in zip(services, (pair.a, pair.b), strict=True):
        with app.app_context():
            service._record_use(info, now, "127.0.0.1", 300)
    assert used == [pair.public_id]
    assert pair.row().last_used_at == now


def test_interval_zero_writes_every_request(make_app: Callable[..., Flask], used: list[str]) -> None:
    pair = Pair(make_app(APITOKENS_LAST_USED_INTERVAL=0), make_app(APITOKENS_LAST_USED_INTERVAL=0))
    for _ in range(3):
        assert pair.get_a().status_code == 200
        assert pair.get_b().status_code == 200
    assert used == [pair.public_id] * 6


def test_check_survives_engine_dispose(pair: Pair) -> None:
    """The token check's own connections are closed with the engine's pool and
    made again on the next request."""
    assert pair.get_b().status_code == 200
    with pair.b.app_context():
        connections = pair.b.extensions["apitokens"].service._statements()[0].connections
        assert connections.idle or connections.pooled
        hostapp.db.engine.dispose()
        assert not connections.idle
    assert pair.get_b().status_code == 200
    pair.set_token(revoked_at=utcnow())
    assert pair.get_b().status_code == 401


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_connection_killed_by_the_server_is_replaced(pair: Pair) -> None:
    """PostgreSQL only: the server ends the other app's connections."""
    assert pair.get_b().status_code == 200
    with pair.a.app_context():
        ended = hostapp.db.session.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        hostapp.db.session.commit()
    assert ended >= 1
    response = pair.get_b()
    assert response.status_code == 200, response.get_data(as_text=True)
    pair.set_token(revoked_at=utcnow())
    assert pair.get_b().status_code == 401


def test_sqlite_in_memory_goes_through_the_pool(tmp_path: Any) -> None:
    """``sqlite://`` lives in its pool's one connection: the check uses the pool."""
    app = hostapp.create_app("sqlite://")
    with app.app_context():
        hostapp.db.create_all()
        user = hostapp.make_user("carol")
        token = app.extensions["apitokens"].service.issue(user, via="cli", scopes=["reports:read"]).token
        client = app.test_client()
        assert client.get("/reports", headers=auth(token)).status_code == 200
        assert app.extensions["apitokens"].service._statements()[0].connections.pooled
        T = app.extensions["apitokens"].models.Token
        hostapp.db.session.execute(sa.update(T).values(revoked_at=utcnow()))
        hostapp.db.session.commit()
        assert client.get("/reports", headers=auth(token)).status_code == 401
        hostapp.db.drop_all()
        hostapp.db.engine.dispose()


def test_forked_child_makes_its_own_connection(pair: Pair) -> None:
    """As under ``gunicorn --preload``: a child neither uses nor closes the
    connection its parent holds for token checks."""
    import os

    assert pair.get_b().status_code == 200
    with pair.b.app_context():
        connections = pair.b.extensions["apitokens"].service._statements()[0].connections
        parent_held = list(connections.idle)
    assert parent_held or connections.pooled
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            ok = pair.get_b().status_code == 200
            fresh = all(held not in parent_held for held in connections.idle)
            status = 0 if ok and fresh else 2
        finally:
            os.write(write, bytes([status]))
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(child, 0)
    assert answer == b"\x00"
    # The parent's own connection still works after the child has gone.
    assert pair.get_b().status_code == 200
    pair.set_token(revoked_at=utcnow())
    assert pair.get_b().status_code == 401


def test_concurrent_checks_from_many_threads(pair: Pair) -> None:
    """Threads share the check's connections (SQLite's move between threads):
    every answer right, and no more idle connections kept than the pool's size."""
    from concurrent.futures import ThreadPoolExecutor

    def hammer(_: int) -> list[int]:
        client = pair.b.test_client()
        return [client.get("/reports", headers=auth(pair.token)).status_code for _ in range(15)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for batch in pool.map(hammer, range(8)) for status in batch]
    assert statuses == [200] * 120
    with pair.b.app_context():
        connections = pair.b.extensions["apitokens"].service._statements()[0].connections
    assert connections.pooled or 1 <= len(connections.idle) <= connections.limit
    pair.set_token(revoked_at=utcnow())
    with ThreadPoolExecutor(max_workers=4) as pool:
        refused = list(pool.map(lambda _: pair.b.test_client().get("/reports", headers=auth(pair.token)).status_code,
                                range(8)))
    assert refused == [401] * 8


@pytest.mark.parametrize("error", [errors.InvalidToken(), errors.Unauthorized("An API key is required."),
                                   errors.InsufficientScope("x", headers={"WWW-Authenticate": "Bearer scope=x"}),
                                   errors.BadRequest("bad")])
def test_error_response_from_the_body_cache_is_jsonify_s(app: Flask, error: errors.APITokensError) -> None:
    """An error's response (its body made once, then cached) has the status,
    body and headers that jsonify would give."""
    with app.test_request_context("/reports"):
        expected = jsonify(error=error.code, message=error.message)
        for _ in range(2):  # made, then from the cache
            got = error_response(error)
            assert got.status_code == error.status
            assert got.get_data() == expected.get_data()
            assert got.mimetype == expected.mimetype
            for name, value in error.headers.items():
                assert got.headers[name] == value
            if isinstance(error, errors.Unauthorized):
                assert got.headers["WWW-Authenticate"]


def test_sql_watchers_see_the_check(pair: Pair) -> None:
    """With a cursor-execute listener (SQL tracing, statement counters) on the
    engine, the check goes through Core so the listener sees it; without one,
    the raw path; both refuse a revoked token at once."""
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with pair.b.app_context():
        engine = hostapp.db.engine
    assert pair.get_b().status_code == 200  # last-used written, unwatched
    sa.event.listen(engine, "before_cursor_execute", watch)
    try:
        assert pair.client_b.get("/plain", headers=auth(pair.token)).status_code == 200
        assert len(seen) == 1 and "apitokens_token" in seen[0] and seen[0].lstrip().upper().startswith("SELECT")
        pair.set_token(revoked_at=utcnow())
        assert pair.get_b().status_code == 401
    finally:
        sa.event.remove(engine, "before_cursor_execute", watch)
    seen.clear()
    pair.set_token(revoked_at=None)
    assert pair.client_b.get("/plain", headers=auth(pair.token)).status_code == 200
    assert seen == []
