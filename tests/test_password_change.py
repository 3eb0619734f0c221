"""A password change ends a person's tokens: ``apitokens.revoke_all(user, reason=...)``
for the host, and ``APITOKENS_REVOKE_ON_PASSWORD_CHANGE``, which revokes in the
same transaction as the host's new password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, abort, jsonify, request
from flask_login import current_user, login_required
from werkzeug.security import generate_password_hash

from flask_apitokens import signals
from flask_apitokens.oauth2 import clients as oauth2_clients
from flask_apitokens.oauth2 import grants_store
from flask_apitokens.service import KEY, OAUTH2, REFRESH
from tests import hostapp
from tests.helpers import auth, basic, login, token_rows


def with_password_route(app: Flask) -> Flask:
    """The host's own "change my password" page, as a host writes one."""

    @app.post("/account/password")
    @login_required
    def change_password() -> Any:
        current_user.password_hash = generate_password_hash(request.form["new"], method=hostapp.FAST_HASH)
        hostapp.db.session.flush()
        if request.form.get("fail"):
            hostapp.db.session.rollback()  # the host's change fails after the flush
            abort(500)
        hostapp.db.session.commit()
        return jsonify(ok=True)

    @app.post("/account/email")
    @login_required
    def change_email() -> Any:
        current_user.email = request.form["email"]
        hostapp.db.session.commit()
        return jsonify(ok=True)

    return app


def credentials_of(app: Flask, client: Any, user: Any) -> dict[str, str]:
    service = app.extensions["apitokens"].service
    jwt = client.post("/api/user-token", headers=basic(user.username)).json["user-token"]
    return {
        "token": service.issue(user, via="cli").token,
        "oauth2": service.issue(user, via="oauth2", kind=OAUTH2).token,
        "refresh": service.issue(user, via="oauth2", kind=REFRESH).token,
        "user-token": jwt,
        "key": service.issue(user, via="cli", kind=KEY).token,
    }


def works(client: Any, kind: str, credential: str) -> bool:
    if kind == "key":
        return bool(client.get("/keys-only", headers=auth(credential, "key")).status_code == 200)
    scheme = "token" if kind == "token" else "Bearer"
    return bool(client.get("/plain", headers=auth(credential, scheme)).status_code == 200)


@pytest.fixture
def on_app(make_app: Callable[..., Flask]) -> Any:
    app = with_password_route(make_app(APITOKENS_REVOKE_ON_PASSWORD_CHANGE=True))
    with app.app_context():
        yield app


def test_a_new_password_revokes_every_credential_with_the_change(on_app: Flask) -> None:
    client = on_app.test_client()
    alice, bob = hostapp.make_user("alice"), hostapp.make_user("bob")
    mine, theirs = credentials_of(on_app, client, alice), credentials_of(on_app, client, bob)
    approve_an_app(on_app, alice, bob)
    heard: list[dict[str, Any]] = []

    def revoked(sender: Flask, **payload: Any) -> None:
        heard.append(payload)

    login(client)
    with signals.token_revoked.connected_to(revoked, on_app):
        assert client.post("/account/password", data={"new": "a new one"}).status_code == 200
    other = on_app.test_client()
    assert {kind: works(other, kind, text) for kind, text in mine.items() if kind != "refresh"} == {
        "token": False, "oauth2": False, "user-token": False, "key": True}  # keys are the administrator's
    assert all(works(other, kind, text) for kind, text in theirs.items() if kind != "refresh")
    rows = {row.id: row for row in token_rows(on_app)}
    alice_rows = [row for row in rows.values() if row.user_id == alice.id and row.kind != KEY]
    assert len(alice_rows) == 4
    assert {(row.revoked_reason, row.revoked_at is not None) for row in alice_rows} == {("password_changed", True)}
    assert [row.revoked_at for row in rows.values() if row.user_id == bob.id] == [None] * 5
    assert (approved(on_app, alice), approved(on_app, bob)) == ([], ["Viewer"])
    assert len(heard) == 1 and (heard[0]["user_id"], heard[0]["reason"]) == (alice.id, "password_changed")
    assert sorted(heard[0]["token_ids"]) == sorted(row.id for row in alice_rows)


def test_a_change_rolled_back_revokes_nothing(on_app: Flask) -> None:
    client = on_app.test_client()
    alice = hostapp.make_user("alice")
    token = on_app.extensions["apitokens"].service.issue(alice, via="cli").token
    heard: list[Any] = []
    login(client)
    with signals.token_revoked.connected_to(lambda sender, **kw: heard.append(kw), on_app):
        assert client.post("/account/password", data={"new": "x", "fail": "1"}).status_code == 500
    assert works(on_app.test_client(), "token", token)
    assert [row.revoked_at for row in token_rows(on_app)] == [None]
    assert heard == []


def test_other_changes_and_the_setting_off_revoke_nothing(on_app: Flask, make_app: Callable[..., Flask]) -> None:
    client = on_app.test_client()
    alice = hostapp.make_user("alice")
    token = on_app.extensions["apitokens"].service.issue(alice, via="cli").token
    login(client)
    assert client.post("/account/email", data={"email": "alice@new.example"}).status_code == 200
    assert works(on_app.test_client(), "token", token)

    off = with_password_route(make_app())
    with off.app_context():
        off_client = off.test_client()
        login(off_client)
        assert off_client.post("/account/password", data={"new": "another"}).status_code == 200
        assert works(off.test_client(), "token", token)
        assert [row.revoked_at for row in token_rows(off)] == [None]


def approve_an_app(app: Flask, *users: Any) -> None:
    made = oauth2_clients.create_client(name="Viewer", public=True, scopes=["reports:read"],
                                        redirect_uris=["http://127.0.0.1:9/cb"])
    for person in users:
        grants_store.record_grant(app.extensions["apitokens"], person, made.client, ["reports:read"])


def approved(app: Flask, person: Any) -> list[str]:
    return [found.client_name for found in grants_store.list_approved_apps(person)]


def test_revoke_all_is_the_hosts_one_call(app: Flask, client: Any, user: Any, other_user: Any) -> None:
    mine, theirs = credentials_of(app, client, user), credentials_of(app, client, other_user)
    approve_an_app(app, user, other_user)
    assert approved(app, user) == ["Viewer"]
    heard: list[dict[str, Any]] = []
    with signals.token_revoked.connected_to(lambda sender, **kw: heard.append(kw), app):
        revoked = hostapp.apitokens.revoke_all(user, reason="compromised")
    assert len(revoked) == 4 and len(set(revoked)) == 4
    assert heard == [{"token_ids": revoked, "user_id": user.id, "reason": "compromised"}]
    assert {kind: works(client, kind, text) for kind, text in mine.items() if kind != "refresh"} == {
        "token": False, "oauth2": False, "user-token": False, "key": True}
    assert all(works(client, kind, text) for kind, text in theirs.items() if kind != "refresh")
    assert {row.revoked_reason for row in token_rows(app) if row.id in revoked} == {"compromised"}
    assert hostapp.apitokens.revoke_all(user, reason="again") == []
    assert (approved(app, user), approved(app, other_user)) == ([], ["Viewer"])


def test_the_setting_must_name_a_real_attribute(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(RuntimeError, match="APITOKENS_PASSWORD_ATTRIBUTE: name the user model"):
        make_app(APITOKENS_REVOKE_ON_PASSWORD_CHANGE=True, APITOKENS_PASSWORD_ATTRIBUTE="no_such_column")
