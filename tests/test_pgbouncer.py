"""Through PgBouncer in transaction mode (Debian's, started by the
``pgbouncer`` fixture), with each host app's engine as it comes (psycopg
prepares a statement once it ran 5 times on a connection; PgBouncer hands a
client a different server connection each transaction, where that name is
missing or another client's). Two app instances take turns, as two processes
behind a load balancer would: the token check, the issuing routes and the
OAuth2 server keep answering right, every time. (tests/test_correctness_across_apps.py
also runs through it.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from tests import hostapp
from tests.helpers import auth, basic, bearer, resolve_database_url, token_rows
from tests.oauth2_server import Served, serve
from tests.pgbouncer_server import postgres_socket_dir, socket_url, start_pgbouncer

pytestmark = pytest.mark.postgres
ROUNDS = 100  # x 2 apps: far past psycopg's prepare threshold on every connection


@pytest.fixture(params=["pgbouncer"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return resolve_database_url(request, tmp_path)


@pytest.fixture
def two_apps(make_app: Callable[..., Flask]) -> tuple[Flask, Flask]:
    a, b = make_app(RATELIMIT_ENABLED=False), make_app(RATELIMIT_ENABLED=False)
    with a.app_context():
        hostapp.make_user("alice", organization="Acme")
    return a, b


def statuses(answers: list[Any]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for answer in answers:
        counted[answer.status_code] = counted.get(answer.status_code, 0) + 1
    return counted


def test_the_check_with_two_apps_taking_turns(two_apps: tuple[Flask, Flask], pgbouncer: Any) -> None:
    a, b = two_apps
    with a.app_context():
        user = hostapp.db.session.execute(sa.select(hostapp.User)).scalar_one()
        token = a.extensions["apitokens"].service.issue(user, via="cli", scopes=["reports:read"]).token
    clients = [a.test_client(), b.test_client()]
    answers = [clients[i % 2].get("/reports", headers=auth(token)) for i in range(2 * ROUNDS)]
    assert statuses(answers) == {200: 2 * ROUNDS}, (answers[-1].get_data(as_text=True), pgbouncer.log())
    assert all(answer.json["user"] == "alice" for answer in answers)
    with a.app_context():
        a.extensions["apitokens"].service.revoke([token.split(":")[0][-12:]])
    assert [client.get("/reports", headers=auth(token)).status_code for client in clients] == [401, 401]


def test_issuing_listing_and_revoking_with_two_apps_taking_turns(two_apps: tuple[Flask, Flask],
                                                               pgbouncer: Any) -> None:
    a, b = two_apps
    clients = [a.test_client(), b.test_client()]
    answers: list[Any] = []
    issued: list[str] = []
    for i in range(ROUNDS // 2):
        client, other = clients[i % 2], clients[(i + 1) % 2]
        made = client.post("/api/authenticate/userpass",
                           data={"username": "alice", "password": "pw-correct", "scopes": "tokens"})
        answers.append(made)
        if made.status_code != 200:
            break
        token = made.json["token"]
        issued.append(token)
        answers.append(other.get("/api/tokens", headers=auth(token)))
        answers.append(client.post("/api/user-token", headers=basic()))
        answers.append(other.delete(f"/api/tokens/{token.split(':')[0][-12:]}", headers=auth(token)))
    assert [a.status_code for a in answers if a.status_code >= 300] == [], (
        [a.get_data(as_text=True)[:300] for a in answers if a.status_code >= 300][:3], pgbouncer.log())
    assert len(issued) == ROUNDS // 2
    with a.app_context():
        rows = token_rows(a)
    assert len([r for r in rows if r.kind == "token"]) == ROUNDS // 2
    assert all(r.revoked_at is not None for r in rows if r.kind == "token")
    assert len([r for r in rows if r.kind == "user-token"]) == ROUNDS // 2


@pytest.fixture
def served(two_apps: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with serve(two_apps[0]) as running, two_apps[0].app_context():
        yield running


def test_the_oauth2_server_with_another_app_taking_turns(served: Served, two_apps: tuple[Flask, Flask],
                                                        pgbouncer: Any) -> None:
    """Code, then refresh after refresh (each rotates), introspection and the
    protected view; between each, the other app issues and checks a token."""
    from tests.oauth2_server import full_flow, register

    client, secret = register(public=False)
    session, token = full_flow(served, client, secret)
    other = two_apps[1].test_client()
    failures: list[str] = []
    for _ in range(12):
        token = session.refresh_token(served.url + "/oauth/token", refresh_token=token["refresh_token"])
        seen = requests.get(served.url + "/reports", headers=bearer(token["access_token"]),
                            timeout=10)
        looked = requests.post(served.url + "/oauth/introspect", data={"token": token["access_token"]},
                               auth=(client.client_id, secret), timeout=10)
        made = other.post("/api/authenticate/userpass", data={"username": "alice", "password": "pw-correct"})
        for answer in (seen, looked, made):
            if answer.status_code != 200:
                failures.append(f"{answer.status_code} {getattr(answer, 'text', '')[:200]}")
        assert looked.json()["active"] is True
    assert failures == [], (failures, served_log(served))
    revoked = requests.post(served.url + "/oauth/revoke", data={"token": token["refresh_token"]},
                            auth=(client.client_id, secret), timeout=10)
    assert revoked.status_code == 200
    assert requests.get(served.url + "/reports", headers=bearer(token["access_token"]),
                        timeout=10).status_code == 401


def served_log(served: Served) -> str:
    return f"app at {served.url}"


@pytest.fixture
def url_through(pgbouncer: Any) -> Iterator[Callable[[str], str]]:
    """The test database's URL straight or through PgBouncer, over TCP or Unix sockets."""
    from tests.helpers import POSTGRES_URL

    started: list[Any] = []

    def url(through: str) -> str:
        if through == "postgresql":
            return POSTGRES_URL
        if through == "postgresql-socket":
            return socket_url(POSTGRES_URL, postgres_socket_dir(), sa.make_url(POSTGRES_URL).port or 5432)
        if through == "pgbouncer":
            return str(pgbouncer.url)
        # PgBouncer on its Unix socket, reaching PostgreSQL on the server's: no
        # address on either side to compare, only the backend's process id.
        started.append(start_pgbouncer(over_sockets=True))
        return str(started[-1].socket_url)

    yield url
    for bouncer in started:
        bouncer.stop()


@pytest.mark.parametrize(("through", "direct"), [("postgresql", True), ("postgresql-socket", True),
                                                 ("pgbouncer", False), ("pgbouncer-socket", False)])
def test_prepared_statements_only_when_talking_to_postgresql_itself(through: str, direct: bool,
                                                                    url_through: Callable[[str], str]) -> None:
    """Straight to PostgreSQL, over TCP or its Unix socket, the check keeps
    psycopg's prepared statements (they save the server a parse and plan per
    check); through PgBouncer (another port than the server's, or a backend
    process id of PgBouncer's own), it and the extension's ORM statements run
    unprepared."""
    app = hostapp.create_app(url_through(through))
    with app.app_context():
        hostapp.db.drop_all()
        hostapp.db.create_all()
        try:
            user = hostapp.make_user("erin")
            token = app.extensions["apitokens"].service.issue(user, via="cli", scopes=["reports:read"]).token
            client = app.test_client()
            for _ in range(8):
                assert client.get("/reports", headers=auth(token)).status_code == 200
            connections = app.extensions["apitokens"].service._statements()[0].connections
            assert connections.direct is direct
            assert all((held.driver.prepare_threshold is None) is (not direct) for held in connections.idle)
            with hostapp.db.engine.connect() as conn:
                conn.execute(sa.select(hostapp.User.id)).all()  # a statement on the user table: asks once
                assert conn.info.get("apitokens_direct") is direct
        finally:
            hostapp.db.session.remove()
            hostapp.db.drop_all()
            hostapp.db.engine.dispose()


def test_a_host_connection_that_prepares_breaks_through_pgbouncer_and_one_that_does_not_works() -> None:
    """What docs/deployment.rst tells hosts about their own queries: psycopg's
    named prepared statements break through PgBouncer 1.18 in transaction mode
    (an error, or another client's statement run under the same name), and
    ``prepare_threshold=None`` avoids it. A PgBouncer of its own: the names
    this test leaves on its server connections must not reach other tests."""
    import psycopg

    bouncer = start_pgbouncer()
    try:
        url = sa.make_url(bouncer.url)
        where = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username or "postgres"}

        def broken_answers(threshold: int | None) -> list[str]:
            broken: list[str] = []
            with psycopg.connect(**where, autocommit=True, prepare_threshold=threshold) as one, \
                    psycopg.connect(**where, autocommit=True, prepare_threshold=threshold) as two:
                for i in range(20):
                    conn, added = (one, 1) if i % 2 == 0 else (two, 2)
                    try:
                        # Each connection's first prepared statement is named _pg3_0.
                        found = conn.execute(f"SELECT %s::int + {added}", (i,)).fetchone()
                    except psycopg.Error as exc:
                        broken.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if found != (i + added,):
                        broken.append(f"another client's statement: {found} for {i} + {added}")
            return broken

        assert broken_answers(0), bouncer.log()  # prepared from the first run
        assert broken_answers(None) == []
    finally:
        bouncer.stop()
