"""The check's one statement decides revocation, expiry, unused and whether
last-used is due with the database's clock; on a database without a clock of
ours the times are bound from the process instead. Both give the same verdicts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_apitokens.models import utcnow
from tests import hostapp
from tests.helpers import auth


def set_token(app: Flask, token: str, **values: Any) -> None:
    T = app.extensions["apitokens"].models.Token
    hostapp.db.session.execute(sa.update(T).where(T.id == token.split(":")[0][-12:]).values(**values))
    hostapp.db.session.commit()


@pytest.mark.parametrize("clock", ["database", "bound"])
def test_verdicts_by_either_clock(make_app: Callable[..., Flask], clock: str) -> None:
    app = make_app(APITOKENS_REVOKE_UNUSED_AFTER_DAYS=10, APITOKENS_LAST_USED_INTERVAL=60)
    with app.app_context():
        service = app.extensions["apitokens"].service
        if clock == "bound":
            # As on a dialect sql_utcnow does not know: the statement takes :now, :due, :unused.
            service._lookup_statement = (lambda original: lambda name: original("another"))(
                service._lookup_statement)
        user = hostapp.make_user("dora")
        token = service.issue(user, via="cli", scopes=["reports:read"]).token
        lookup = service._statements()[0]
        assert bool(service._bound_times) == (clock == "bound")
        bound = {name for name, _ in lookup.binds}
        assert bound == ({"tid", "now", "due", "unused"} if clock == "bound" else {"tid"})
        client = app.test_client()
        T = app.extensions["apitokens"].models.Token

        def get() -> int:
            return client.get("/reports", headers=auth(token)).status_code  # type: ignore[no-any-return]

        def last_used() -> Any:
            hostapp.db.session.expire_all()
            return hostapp.db.session.execute(sa.select(T.last_used_at)).scalar_one()

        assert get() == 200
        first = last_used()
        assert first is not None
        assert get() == 200 and last_used() == first  # not due again within the interval
        set_token(app, token, last_used_at=utcnow() - dt.timedelta(seconds=61))
        assert get() == 200 and last_used() > first  # due: written
        set_token(app, token, expires_at=utcnow() + dt.timedelta(seconds=30))
        assert get() == 200
        set_token(app, token, expires_at=utcnow() - dt.timedelta(milliseconds=5))
        assert get() == 401
        set_token(app, token, expires_at=None, revoked_at=utcnow())
        assert get() == 401
        set_token(app, token, revoked_at=None)
        assert get() == 200
        set_token(app, token, last_used_at=utcnow() - dt.timedelta(days=11))
        response = client.get("/reports", headers=auth(token))
        assert response.status_code == 401 and response.json["error"] == "invalid_token"
        hostapp.db.session.expire_all()
        assert hostapp.db.session.execute(sa.select(T.revoked_at)).scalar_one() is not None  # revoked as unused
