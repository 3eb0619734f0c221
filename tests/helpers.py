"""What the tests share besides fixtures (those are in conftest.py): skipping
for a missing component, the databases to run on, credential headers, and
small steps against the tests' host app (tests/hostapp.py)."""

from __future__ import annotations

import base64
import importlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests import hostapp

STRICT = os.environ.get("APITOKENS_TEST_STRICT") == "1"
POSTGRES_URL = os.environ.get("APITOKENS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("APITOKENS_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
#: The password tests/hostapp.py's make_user gives everyone unless told otherwise.
PASSWORD = "pw-correct"


# -- what a test needs ----------------------------------------------------------------------------
def need(reason: str) -> None:
    """Skip with ``reason`` (how to get the component), or fail in strict mode."""
    if STRICT:
        pytest.fail(f"APITOKENS_TEST_STRICT=1 and {reason}")
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str) -> Any:
    """``import name``, or :func:`need` it (pytest.importorskip would skip even in strict mode)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(f"install {name.split('.')[0]} (pip install -e '.[all,test,docs]') for this test")


def need_redis(purpose: str) -> str:
    """:data:`REDIS_URL` once its Redis answers, or :func:`need` it ``purpose``."""
    redis = need_module("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        need(f"run Redis at {REDIS_URL} (or set APITOKENS_TEST_REDIS_URL) {purpose}")
    return REDIS_URL


# -- the databases --------------------------------------------------------------------------------
def database_urls(*, pgbouncer: bool = False) -> list[Any]:
    """``sqlite``, ``postgresql`` and, with ``pgbouncer``, the same PostgreSQL
    through PgBouncer in transaction mode (tests/pgbouncer_server.py)."""
    urls = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
    return urls + [pytest.param("pgbouncer", marks=pytest.mark.postgres)] if pgbouncer else urls


def resolve_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL for a fixture parametrized with :func:`database_urls`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to test on PostgreSQL")
    if request.param == "pgbouncer":
        return request.getfixturevalue("pgbouncer").url  # type: ignore[no-any-return]
    return POSTGRES_URL  # type: ignore[return-value]


# -- the test client ------------------------------------------------------------------------------
class AppContextPerRequestClient(FlaskClient):
    """A test client whose every request runs in an app context of its own, as
    in a server. Flask's own client reuses the context a test holds, so ``g``
    (Flask-Login's cached user, the request's credential) and the database
    session would carry over from one request to the next."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if self.preserve_context:  # ``with client:`` keeps the request's contexts for the test to read
            return super().open(*args, **kwargs)
        with self.application.app_context():
            return super().open(*args, **kwargs)


# -- credential headers ---------------------------------------------------------------------------
def auth(token: str, scheme: str = "token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def bearer(token: str) -> dict[str, str]:
    return auth(token, "Bearer")


def basic(login: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    """HTTP Basic: a person's login and password, or an OAuth2 client's id and secret."""
    return auth(base64.b64encode(f"{login}:{password}".encode()).decode(), "Basic")


# -- steps against the tests' host ----------------------------------------------------------------
def login(client: Any, username: str = "alice") -> None:
    """Log ``client`` in through the host's own session login."""
    assert client.post("/login", data={"username": username}).status_code == 200


def cli(app: Flask, *args: str) -> Any:
    """Run ``flask apitokens <args>`` against ``app`` in an app context of its
    own, as its own process would (see :class:`AppContextPerRequestClient`)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=["apitokens", *args])


def token_rows(app: Flask) -> list[Any]:
    """Every token row, read fresh from the database."""
    models = app.extensions["apitokens"].models
    hostapp.db.session.expire_all()
    return list(hostapp.db.session.execute(sa.select(models.Token)).scalars())


@contextmanager
def counted_queries(app: Flask) -> Iterator[list[str]]:
    """Every statement the app's engine runs (SQLAlchemy's cursor event)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = hostapp.db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


@contextmanager
def host_request_loader(answer: Callable[[str], Any]) -> Iterator[list[str]]:
    """The host's own Flask-Login request loader for the block: it returns
    ``answer(Authorization header)`` and lists every header it was shown."""
    shown: list[str] = []

    def loader(request: Any) -> Any:
        header = request.headers.get("Authorization", "")
        shown.append(header)
        return answer(header)

    previous = hostapp.login_manager._request_callback
    hostapp.login_manager._request_callback = loader
    try:
        yield shown
    finally:
        hostapp.login_manager._request_callback = previous


# -- steps on the token page ------------------------------------------------------------------------
def csrf_token(html: str, form: str = "token") -> str:
    """The CSRF token of the page's ``form`` (``""``: the page-wide one)."""
    field = f"{form}-csrf_token" if form else "csrf_token"
    found = re.search(rf'name="{re.escape(field)}" type="hidden" value="([^"]+)"', html)
    assert found, f"no {field} in the page"
    return found.group(1)


def page_csrf(client: Any, form: str = "token") -> str:
    response = client.get("/tokens")
    assert response.status_code == 200
    return csrf_token(response.get_data(as_text=True), form)


def create_token(client: Any, **fields: Any) -> Any:
    """Submit the page's new-token form (name "laptop", 30 days, unless ``fields`` say otherwise)."""
    data = {"token-csrf_token": page_csrf(client), "token-name": "laptop", "token-expires_in_days": "30"}
    data.update({f"token-{key}": value for key, value in fields.items()})
    return client.post("/tokens/create", data=data)
