"""No log record, at any level and from any logger (the extension's, Flask's,
Flask-Limiter's, SQLAlchemy's statements and parameters), holds a token, a
token's secret or a password, through a whole issue/use/rotate/revoke/failure cycle."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from tests import hostapp
from tests.helpers import auth

PASSWORD = "pw-correct"


def test_no_secret_is_ever_logged(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger without its own level
    # SQLAlchemy sets WARN on its own logger: at DEBUG it logs statements and parameters too.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    app: Flask = make_app(APITOKENS_ACCOUNT_RATE_LIMIT="3/minute")
    secrets: list[str] = [PASSWORD, "wrong-password-123"]
    with app.app_context():
        hostapp.make_user("alice", password=PASSWORD)
        client = app.test_client()
        # Issue, two ways.
        first = client.post("/api/authenticate/userpass", json={"username": "alice", "password": PASSWORD,
                                                               "scopes": ["tokens", "reports:read"]})
        assert first.status_code == 200
        second = client.post("/api/api_tokens", json={"email": "alice@example.com", "password": PASSWORD})
        assert second.status_code == 200
        tokens = [first.json["token"], second.json["token"]]
        # Use, list, rotate.
        assert client.get("/reports", headers=auth(tokens[0])).status_code == 200
        assert client.get("/api/me", headers=auth(tokens[1], "Bearer")).status_code == 200
        listed = client.get("/api/tokens", headers=auth(tokens[0])).json["tokens"]
        other_id = next(t["id"] for t in listed if t["id"] not in tokens[0])
        rotated = client.post(f"/api/tokens/{other_id}/rotate", headers=auth(tokens[0]))
        assert rotated.status_code == 200
        tokens.append(rotated.json["token"])
        # Failures: wrong password (until rate limited), a mangled token, a revoked one.
        for _ in range(4):
            client.post("/api/authenticate/userpass", data={"username": "alice", "password": "wrong-password-123"})
        assert client.get("/reports", headers=auth(tokens[0][:-3] + "abc")).status_code == 401
        assert client.delete("/api/tokens", headers=auth(tokens[0])).status_code == 200
        for token in tokens:
            assert client.get("/plain", headers=auth(token)).status_code == 401

    secrets += tokens + [token.split(":", 1)[1] for token in tokens]
    assert len(caplog.records) > 10  # the capture works: SQL statements at least
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, (record.name, record.levelname, text[:300])
