"""The expiring-soon signal (issue 15, item 8): once per token, only for
tokens whose lifetime is longer than the warning window, never for a rotated
(inside its grace period) or revoked one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_apitokens import signals
from flask_apitokens.models import utcnow
from tests import hostapp

DAY = dt.timedelta(days=1)


@pytest.fixture
def warned(app: Flask) -> Iterator[list[str]]:
    received: list[str] = []

    def receiver(sender: Any, token: Any, user_id: Any) -> None:
        received.append(token.id)

    with signals.token_expiring.connected_to(receiver, app):
        yield received


def service(app: Flask) -> Any:
    return app.extensions["apitokens"].service


def age(app: Flask, token_id: str, days: float) -> None:
    """Move a token's life ``days`` into the past, as if a daily job ran that much later."""
    T = app.extensions["apitokens"].models.Token
    shift = dt.timedelta(days=days)
    row = hostapp.db.session.get(T, token_id)
    row.created_at, row.expires_at = row.created_at - shift, row.expires_at - shift
    hostapp.db.session.commit()


def notified_at(app: Flask, token_id: str) -> Any:
    T = app.extensions["apitokens"].models.Token
    hostapp.db.session.expire_all()
    return hostapp.db.session.get(T, token_id).expiry_notified_at


def test_short_lived_credentials_are_never_warned(app: Flask, user: Any, warned: list[str]) -> None:
    # The first daily run after they were made: "expiring within 7 days" from their first minute.
    day = service(app).issue(user, via="user-token", kind="user-token", expires_in=86400).info.id
    week = service(app).issue(user, via="cli", expires_in=7 * 86400).info.id
    month = service(app).issue(user, via="cli", expires_in=30 * 86400).info.id
    assert service(app).notify_expiring() == []
    age(app, week, 6)
    age(app, day, 0.5)
    assert service(app).notify_expiring() == []
    assert warned == []
    assert notified_at(app, day) is None and notified_at(app, week) is None
    # The 30-day token is warned once its last 7 days come, once.
    age(app, month, 24)
    assert [info.id for info in service(app).notify_expiring()] == [month]
    assert service(app).notify_expiring() == []
    assert warned == [month]
    assert notified_at(app, month) is not None


def test_a_rotated_token_is_not_warned(app: Flask, user: Any, warned: list[str]) -> None:
    old = service(app).issue(user, via="cli", expires_in=30 * 86400)
    age(app, old.info.id, 10)
    new = service(app).rotate(old.info.id, user=user)
    T = app.extensions["apitokens"].models.Token
    hostapp.db.session.expire_all()
    ends = hostapp.db.session.get(T, old.info.id).expires_at
    assert utcnow() < ends <= utcnow() + dt.timedelta(seconds=app.config.get("APITOKENS_ROTATION_GRACE", 600))
    assert service(app).notify_expiring() == []
    assert warned == []
    # The new token has its own full lifetime; it is warned in its own last week.
    age(app, new.info.id, 24)
    assert [info.id for info in service(app).notify_expiring()] == [new.info.id]


def test_a_revoked_token_is_not_warned(app: Flask, user: Any, warned: list[str]) -> None:
    token = service(app).issue(user, via="cli", expires_in=30 * 86400).info.id
    key = service(app).issue(user, via="cli", kind="key", expires_in=60 * 86400).info.id
    age(app, token, 25)
    age(app, key, 55)
    service(app).revoke([token])
    assert [info.id for info in service(app).notify_expiring()] == [key]
    assert warned == [key]
