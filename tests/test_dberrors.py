"""Every database error the extension answers with 503 is logged once, with its
cause and no secret; a missing table is named with the fix (issue 15, item 1)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests import hostapp
from tests.helpers import auth, login

LOGGER = "flask_apitokens"


def drop_token_table(app: Flask) -> None:
    """As a host that created its tables before init_app, or never migrated."""
    models = app.extensions["apitokens"].models
    hostapp.db.session.remove()
    with hostapp.db.engine.begin() as connection:
        models.use_table.drop(connection)  # it refers to the token table
        models.Token.__table__.drop(connection)


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.fixture
def missing_table_app(make_app: Callable[..., Flask]) -> Any:
    app = make_app()
    with app.app_context():
        user = hostapp.make_user("alice")
        token = app.extensions["apitokens"].service.issue(user, via="cli").token
        drop_token_table(app)
        yield app, token


def test_a_missing_table_is_logged_once_with_the_fix(missing_table_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, token = missing_table_app
    client = app.test_client()
    caplog.set_level(logging.DEBUG)

    # A protected view of the host (the decorator's token check).
    response = client.get("/reports", headers=auth(token))
    assert response.status_code == 503
    assert response.get_json() == {"error": "service_unavailable",
                                   "message": "The token store is unavailable; try again shortly."}
    logged = records(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    text = logged[0].getMessage()
    assert logged[0].levelno == logging.ERROR
    assert "apitokens_token does not exist" in text
    assert "flask db upgrade" in text and "init_app before db.create_all()" in text
    assert "token check" in text
    assert token not in caplog.text and token.split("_")[-1] not in caplog.text

    # An extension route (the ORM path and the blueprint's handler), and a login that issues.
    caplog.clear()
    login(client)
    response = client.get("/api/tokens")
    assert response.status_code == 503
    assert response.get_json()["error"] == "service_unavailable"
    logged = records(caplog)
    assert len(logged) == 1 and "apitokens_token does not exist" in logged[0].getMessage()
    assert "GET /api/tokens" in logged[0].getMessage()

    caplog.clear()
    response = app.test_client().post("/api/authenticate/userpass",
                                      json={"username": "alice", "password": "pw-correct"})
    assert response.status_code == 503
    logged = records(caplog)
    assert len(logged) == 1 and "apitokens_token does not exist" in logged[0].getMessage()
    assert "pw-correct" not in caplog.text


def test_the_token_page_logs_a_missing_table(missing_table_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, _ = missing_table_app
    client = app.test_client()
    login(client)
    caplog.set_level(logging.DEBUG)
    response = client.get("/tokens")
    assert response.status_code == 503
    logged = records(caplog)
    assert len(logged) == 1 and "apitokens_token does not exist" in logged[0].getMessage()
    assert "token page" in logged[0].getMessage()


def test_an_outage_is_logged_with_its_cause(make_app: Callable[..., Flask], database_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Not a missing table (a table locked past the timeout): one warning with
    the driver's error, no parameters, no token."""
    postgres = database_url.startswith("postgresql")
    app = make_app(RATELIMIT_ENABLED=False, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": (
        {"options": "-c lock_timeout=200"} if postgres else {"timeout": 0.2})})
    with app.app_context():
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
        hostapp.db.session.remove()
        client = app.test_client()
        assert client.get("/plain", headers=auth(token)).status_code == 200
        caplog.set_level(logging.DEBUG)
        if postgres:
            with hostapp.db.engine.connect() as locker:
                locker.exec_driver_sql("LOCK TABLE apitokens_token IN ACCESS EXCLUSIVE MODE")
                response = client.get("/plain", headers=auth(token))
                locker.rollback()
        else:
            locker = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                response = client.get("/plain", headers=auth(token))
            finally:
                locker.rollback()
                locker.close()
        hostapp.db.session.remove()
    assert response.status_code == 503
    assert response.get_json()["error"] == "service_unavailable"
    logged = records(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].levelno == logging.WARNING
    text = logged[0].getMessage()
    assert "token check" in text
    assert ("LockNotAvailable" in text) if postgres else ("database is locked" in text)
    assert token not in caplog.text
    assert token.split("_")[-1] not in caplog.text


def test_bad_sql_is_not_taken_for_an_outage() -> None:
    from flask_apitokens import dberrors

    class Orig(Exception):
        sqlstate = "42601"

    error = sa.exc.ProgrammingError("SELECT", {}, Orig('syntax error at or near "x"'))
    assert not dberrors.is_unavailable(error)
    missing = sa.exc.ProgrammingError("SELECT", {}, type("UndefinedTable", (Exception,), {"sqlstate": "42P01"})(
        'relation "apitokens_token" does not exist\nLINE 1: ...'))
    assert dberrors.is_unavailable(missing)
    assert dberrors.missing_table(missing) == "apitokens_token"
