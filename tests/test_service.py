"""The token core: lifetime policy, revocation, rotation, throttled last-used,
what is stored, and signals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_apitokens import errors, signals
from flask_apitokens.models import utcnow
from tests import hostapp
from tests.helpers import auth, token_rows


def service(app: Flask) -> Any:
    return app.extensions["apitokens"].service


def set_row(app: Flask, token: str, **values: Any) -> None:
    T = app.extensions["apitokens"].models.Token
    public_id = token.split(":")[0][-12:]
    hostapp.db.session.execute(sa.update(T).where(T.id == public_id).values(**values))
    hostapp.db.session.commit()


def test_valid_token_reaches_the_view(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"])
    response = client.get("/reports", headers=auth(token))
    assert response.status_code == 200
    assert response.json["user"] == "alice"


def test_database_holds_no_usable_token(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"])
    secret = token.split(":")[1]
    rows = token_rows(app)
    assert len(rows) == 1
    row = rows[0]
    for column in row.__table__.columns:
        value = getattr(row, column.name)
        if isinstance(value, (str, bytes)):
            assert secret[:16] not in (value if isinstance(value, str) else value.decode("latin-1"))
    # Each stored value, presented as a token, is refused.
    for candidate in (row.id, f"apt_{row.id}:{row.digest.hex()}", row.digest.hex(), f"{row.id}:{row.digest.hex()}"):
        assert client.get("/reports", headers=auth(candidate)).status_code == 401


def test_expired_token_is_refused(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"], expires_in=60)
    assert client.get("/reports", headers=auth(token)).status_code == 200
    set_row(app, token, expires_at=utcnow() - dt.timedelta(seconds=1))
    response = client.get("/reports", headers=auth(token))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_revoked_token_is_refused_at_once(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"])
    assert client.get("/reports", headers=auth(token)).status_code == 200
    service(app).revoke([token.split(":")[0][-12:]])
    assert client.get("/reports", headers=auth(token)).status_code == 401


def test_deactivated_user_loses_access_at_once(app: Flask, client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:read"])
    assert client.get("/reports", headers=auth(token)).status_code == 200
    user.active = False
    hostapp.db.session.commit()
    assert client.get("/reports", headers=auth(token)).status_code == 401


def test_wrong_scope_is_403_with_the_missing_scope(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user, scopes=["reports:write"])
    response = client.get("/reports", headers=auth(token))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    assert "reports:read" in response.headers["WWW-Authenticate"]


def test_token_without_scopes_calls_views_that_ask_none(client: Any, user: Any, issue: Callable[..., str]) -> None:
    token = issue(user)
    assert client.get("/plain", headers=auth(token)).status_code == 200
    assert client.get("/reports", headers=auth(token)).status_code == 403


def test_max_lifetime_caps_what_is_asked(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_MAX_LIFETIME=3600)
    with app.app_context():
        owner = hostapp.make_user("carol")
        info = service(app).issue(owner, via="cli", expires_in=10 * 86400).info
        assert info.expires_at - info.created_at == dt.timedelta(seconds=3600)
        never = service(app).issue(owner, via="cli", expires_in=None).info
        assert never.expires_at - never.created_at == dt.timedelta(seconds=3600)
        key = service(app).issue(owner, via="cli", kind="key").info
        assert key.expires_at is None


def test_per_method_default_expiry(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_USERPASS_EXPIRES_IN=120, APITOKENS_SESSION_EXPIRES_IN=None, APITOKENS_MAX_LIFETIME=None)
    with app.app_context():
        owner = hostapp.make_user("carol")
        userpass = service(app).issue(owner, via="userpass").info
        assert userpass.expires_at - userpass.created_at == dt.timedelta(seconds=120)
        assert service(app).issue(owner, via="session").info.expires_at is None


def test_unused_token_is_revoked_after_n_days(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_REVOKE_UNUSED_AFTER_DAYS=30)
    with app.app_context():
        owner = hostapp.make_user("carol")
        token = service(app).issue(owner, via="cli").token
        client = app.test_client()
        assert client.get("/plain", headers=auth(token)).status_code == 200
        set_row(app, token, last_used_at=utcnow() - dt.timedelta(days=31))
        assert client.get("/plain", headers=auth(token)).status_code == 401
        assert token_rows(app)[0].revoked_at is not None


def test_the_check_neither_flushes_nor_commits_the_hosts_session(make_app: Callable[..., Flask]) -> None:
    """Revoking a token left unused is written on the check's own connection:
    what the host's request has pending stays pending, and goes with a rollback."""
    app = make_app(APITOKENS_REVOKE_UNUSED_AFTER_DAYS=30)
    revoked: list[dict[str, Any]] = []
    with app.app_context(), signals.token_revoked.connected_to(lambda sender, **sent: revoked.append(sent), app):
        owner = hostapp.make_user("carol")
        owner_id = owner.id
        issued = service(app).issue(owner, via="cli")
        set_row(app, issued.token, last_used_at=utcnow() - dt.timedelta(days=31))
        pending = hostapp.User(username="pending", email="pending@example.com")
        hostapp.db.session.add(pending)
        with pytest.raises(errors.InvalidToken):
            service(app).authenticate(issued.token, scheme="token")
        assert pending in hostapp.db.session.new  # not flushed
        hostapp.db.session.rollback()
        assert hostapp.db.session.execute(sa.select(hostapp.User.username)).scalars().all() == ["carol"]
        row = token_rows(app)[0]
        assert row.revoked_at is not None and row.revoked_reason == "unused"
        assert revoked == [{"token_ids": [issued.info.id], "user_id": owner_id, "reason": "unused"}]


def test_an_unused_oauth2_token_takes_its_family_without_touching_the_hosts_session(
        make_app: Callable[..., Flask]) -> None:
    """The OAuth2 family revoker answers the check's "unused" revocation in a
    session of its own too: the app's refresh token goes, the host's pending
    work stays pending."""
    app = make_app(APITOKENS_REVOKE_UNUSED_AFTER_DAYS=30)
    with app.app_context():
        owner = hostapp.make_user("carol")
        refresh = service(app).issue(owner, via="oauth2", kind="refresh")
        access = service(app).issue(owner, via="oauth2", kind="oauth2")
        set_row(app, access.token, parent_id=refresh.info.id, last_used_at=utcnow() - dt.timedelta(days=31))
        pending = hostapp.User(username="pending", email="pending@example.com")
        hostapp.db.session.add(pending)
        with pytest.raises(errors.InvalidToken):
            service(app).authenticate(access.token, scheme="bearer")
        assert pending in hostapp.db.session.new  # neither flushed nor committed
        hostapp.db.session.rollback()
        assert hostapp.db.session.execute(sa.select(hostapp.User.username)).scalars().all() == ["carol"]
        reasons = {row.id: row.revoked_reason for row in token_rows(app)}
        assert reasons == {access.info.id: "unused", refresh.info.id: "oauth2_family"}


def test_last_used_write_is_throttled(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LAST_USED_INTERVAL=3600)
    used: list[Any] = []
    with app.app_context(), signals.token_used.connected_to(lambda sender, token: used.append(token), app):
        owner = hostapp.make_user("carol")
        token = service(app).issue(owner, via="cli").token
        client = app.test_client()
        for _ in range(5):
            response = client.get("/plain", headers=auth(token), environ_base={"REMOTE_ADDR": "10.1.2.3"})
            assert response.status_code == 200
        assert len(used) == 1
        row = token_rows(app)[0]
        assert row.last_used_ip == "10.1.2.3"
        first = row.last_used_at
        set_row(app, token, last_used_at=first - dt.timedelta(hours=2))
        assert client.get("/plain", headers=auth(token)).status_code == 200
        assert len(used) == 2
        assert token_rows(app)[0].last_used_at > first - dt.timedelta(hours=1)


def test_interval_zero_writes_every_use(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LAST_USED_INTERVAL=0)
    used: list[Any] = []
    with app.app_context(), signals.token_used.connected_to(lambda sender, token: used.append(token), app):
        token = service(app).issue(hostapp.make_user("carol"), via="cli").token
        client = app.test_client()
        for _ in range(3):
            client.get("/plain", headers=auth(token))
        assert len(used) == 3


def test_rotation_keeps_old_token_for_the_grace_period(app: Flask, client: Any, user: Any) -> None:
    old = service(app).issue(user, via="cli", name="deploy", scopes=["reports:read"], expires_in=86400)
    new = service(app).rotate(old.info.id, user=user)
    assert new.info.name == "deploy" and new.info.scopes == old.info.scopes
    assert new.info.expires_at - new.info.created_at == dt.timedelta(seconds=86400)
    assert client.get("/reports", headers=auth(old.token)).status_code == 200
    assert client.get("/reports", headers=auth(new.token)).status_code == 200
    grace_end = token_rows(app)[0 if token_rows(app)[0].id == old.info.id else 1].expires_at
    assert dt.timedelta(seconds=590) < grace_end - utcnow() <= dt.timedelta(seconds=600)
    set_row(app, old.token, expires_at=utcnow() - dt.timedelta(seconds=1))
    assert client.get("/reports", headers=auth(old.token)).status_code == 401
    assert client.get("/reports", headers=auth(new.token)).status_code == 200


def test_purge_expired_deletes_expired_and_revoked(app: Flask, user: Any) -> None:
    live = service(app).issue(user, via="cli")
    expired = service(app).issue(user, via="cli")
    revoked = service(app).issue(user, via="cli")
    set_row(app, expired.token, expires_at=utcnow() - dt.timedelta(seconds=1))
    service(app).revoke([revoked.info.id])
    assert service(app).purge_expired() == 2
    assert [row.id for row in token_rows(app)] == [live.info.id]


def test_expiring_signal_is_sent_once(app: Flask, user: Any) -> None:
    soon = service(app).issue(user, via="cli", expires_in=30 * 86400)
    service(app).issue(user, via="cli", expires_in=30 * 86400)
    # 27 days into its 30: its last 3 days.
    set_row(app, soon.token, created_at=utcnow() - dt.timedelta(days=27), expires_at=utcnow() + dt.timedelta(days=3))
    warned: list[Any] = []
    with signals.token_expiring.connected_to(lambda sender, token, user_id: warned.append(token.id), app):
        service(app).notify_expiring()
        service(app).notify_expiring()
    assert warned == [soon.info.id]


def test_signals_for_issue_revoke_and_failure(app: Flask, client: Any, user: Any) -> None:
    seen: list[tuple[str, Any]] = []
    sent: list[dict[str, Any]] = []  # everything every signal carried

    def record(name: str, field: str) -> Any:
        def receiver(sender: Any, **kw: Any) -> None:
            seen.append((name, kw[field]))
            sent.append(kw)
        return receiver

    with signals.token_issued.connected_to(record("issued", "via"), app), \
            signals.token_revoked.connected_to(record("revoked", "token_ids"), app), \
            signals.authentication_failed.connected_to(record("failed", "reason"), app):
        issued = service(app).issue(user, via="cli")
        service(app).revoke([issued.info.id])
        client.get("/plain", headers=auth(issued.token))
        client.post("/api/authenticate/userpass", data={"username": "alice", "password": "nope"})
    assert seen == [("issued", "cli"), ("revoked", [issued.info.id]), ("failed", "revoked"),
                    ("failed", "invalid_credentials")]
    assert sent and all("nope" not in repr(kw) for kw in sent)  # no password in any signal


def test_pepper_rotation_keeps_old_tokens_valid(make_app: Callable[..., Flask]) -> None:
    old_app = make_app(APITOKENS_PEPPER="the first pepper value")
    with old_app.app_context():
        token = service(old_app).issue(hostapp.make_user("carol"), via="cli").token
    rotated = make_app(APITOKENS_PEPPER="the second pepper value",
                       APITOKENS_PEPPER_FALLBACKS=["the first pepper value"])
    assert rotated.test_client().get("/plain", headers=auth(token)).status_code == 200
    dropped = make_app(APITOKENS_PEPPER="the second pepper value")
    assert dropped.test_client().get("/plain", headers=auth(token)).status_code == 401


def test_unknown_scope_is_refused(app: Flask, user: Any) -> None:
    from flask_apitokens.errors import InvalidScope

    with pytest.raises(InvalidScope):
        service(app).issue(user, via="cli", scopes=["admin:everything"])
    assert token_rows(app) == []


def test_method_names_the_expiry_setting_and_none_means_never(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_PROVIDER_EXPIRES_IN=7200, APITOKENS_MAX_LIFETIME=None)
    with app.app_context():
        owner = hostapp.make_user("carol")
        github = service(app).issue(owner, via="github", method="provider").info
        assert (github.via, github.expires_at - github.created_at) == ("github", dt.timedelta(seconds=7200))
        assert service(app).issue(owner, via="cli", expires_in=None).info.expires_at is None


def test_token_issued_waits_for_the_commit_and_a_rollback_drops_it(app: Flask, user: Any) -> None:
    seen: list[str] = []
    with signals.token_issued.connected_to(lambda sender, token, **kw: seen.append(token.id), app):
        dropped = service(app).issue(user, via="cli", commit=False)
        assert seen == []
        hostapp.db.session.rollback()
        kept = service(app).issue(user, via="cli", commit=False)
        service(app).commit()
        assert seen == [kept.info.id]
        service(app).commit()
        assert seen == [kept.info.id]
    assert [row.id for row in token_rows(app)] == [kept.info.id] != [dropped.info.id]
