"""Fixtures: an app factory on SQLite (and PostgreSQL when
APITOKENS_TEST_DATABASE_URL is set), users, clients and tokens.
Helpers the tests share are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from tests import hostapp
from tests.browser import launched_chromium
from tests.helpers import AppContextPerRequestClient, database_urls, resolve_database_url
from tests.pgbouncer_server import start_pgbouncer
from tests.provider_server import ProviderServer


@pytest.fixture(params=database_urls())
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return resolve_database_url(request, tmp_path)


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Any]:
    """PgBouncer in transaction mode in front of APITOKENS_TEST_DATABASE_URL's database."""
    bouncer = start_pgbouncer()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (tests/browser.py), one per test module."""
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ProviderServer]:
    """The stand-in for GitHub's, GitLab's and an OIDC provider's API (tests/provider_server.py)."""
    server = ProviderServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build a test app with config overrides; its tables are made and dropped."""
    made: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = hostapp.create_app(database_url, **config)
        app.test_client_class = AppContextPerRequestClient
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
    """An app whose context the test holds, for its direct database work;
    each request of its test client pushes a context of its own."""
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
