"""Fixtures: an app factory on SQLite (and PostgreSQL when
APITOKENS_TEST_DATABASE_URL is set), users, clients and tokens."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient

from tests import hostapp

STRICT = os.environ.get("APITOKENS_TEST_STRICT") == "1"
POSTGRES_URL = os.environ.get("APITOKENS_TEST_DATABASE_URL")


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


def database_urls(*, pgbouncer: bool = False) -> list[Any]:
    """``sqlite``, ``postgresql`` and, with ``pgbouncer``, the same PostgreSQL
    through PgBouncer in transaction mode (tests/pgbouncer_server.py)."""
    urls = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
    return urls + [pytest.param("pgbouncer", marks=pytest.mark.postgres)] if pgbouncer else urls


def resolve_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to test on PostgreSQL")
    if request.param == "pgbouncer":
        return request.getfixturevalue("pgbouncer").url  # type: ignore[no-any-return]
    return POSTGRES_URL  # type: ignore[return-value]


@pytest.fixture(params=database_urls())
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return resolve_database_url(request, tmp_path)


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Any]:
    """PgBouncer in transaction mode in front of APITOKENS_TEST_DATABASE_URL's database."""
    from tests.pgbouncer_server import start_pgbouncer

    bouncer = start_pgbouncer()
    try:
        yield bouncer
    finally:
        bouncer.stop()


class FreshUserClient(FlaskClient):
    """A test client that forgets Flask-Login's cached user between requests,
    as separate requests would in a server (tests keep one app context pushed)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            g.pop("_login_user", None)
        return super().open(*args, **kwargs)


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build a test app with config overrides; its tables are made and dropped."""
    made: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = hostapp.create_app(database_url, **config)
        app.test_client_class = FreshUserClient
        with app.app_context():
            if not made:
                hostapp.db.drop_all()
            hostapp.db.create_all()
        made.append(app)
        return app

    yield factory
    for index, app in enumerate(made):
        with app.app_context():
            hostapp.db.session.remove()
            if index == 0:
                hostapp.db.drop_all()
            hostapp.db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def user(app: Flask) -> hostapp.User:
    return hostapp.make_user("alice", organization="Acme")


@pytest.fixture
def other_user(app: Flask) -> hostapp.User:
    return hostapp.make_user("bob")


@pytest.fixture
def issue(app: Flask) -> Callable[..., str]:
    """issue(user, **options) -> the plain text of a new token."""

    def make(owner: Any, **options: Any) -> str:
        options.setdefault("via", "cli")
        return app.extensions["apitokens"].service.issue(owner, **options).token

    return make


def auth(token: str, scheme: str = "token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def token_rows(app: Flask) -> list[Any]:
    models = app.extensions["apitokens"].models
    hostapp.db.session.expire_all()
    return list(hostapp.db.session.execute(sa.select(models.Token)).scalars())
