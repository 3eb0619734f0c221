"""``flask apitokens create-token / list / revoke / purge-expired / notify-expiring``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_apitokens import signals
from tests.helpers import auth, cli, token_rows
from tests.hostapp import db


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def row_of(app: Flask, token_id: str) -> Any:
    return next(row for row in token_rows(app) if row.id == token_id)


# -- create-token ---------------------------------------------------------------------
def test_create_token_json(app: Flask, client: Any, user: Any) -> None:
    result = cli(app, "create-token", "--user", "alice", "--name", "ci", "--scope", "reports:read",
                 "--scope", "tokens", "--json")
    assert result.exit_code == 0
    created = json.loads(result.output)  # exactly one JSON object, nothing else
    assert set(created) == {"id", "token", "expiresOn", "scopes"}
    assert created["token"].startswith(f"apt_{created['id']}:")
    assert created["scopes"] == ["reports:read", "tokens"]
    row = row_of(app, created["id"])
    assert (row.kind, row.via, row.name, row.user_id) == ("token", "cli", "ci", user.id)
    assert (row.expires_at - row.created_at).total_seconds() == 90 * 86400  # APITOKENS_CLI_EXPIRES_IN
    assert client.get("/reports", headers=auth(created["token"])).status_code == 200


def test_create_token_text_and_expires_in(app: Flask, user: Any) -> None:
    result = cli(app, "create-token", "--user", "alice@example.com", "--expires-in", "120")
    assert result.exit_code == 0
    [row] = token_rows(app)
    assert result.stdout.splitlines()[0].startswith(f"token: apt_{row.id}:")
    assert "expires: 20" in result.stdout and "not be shown again" in result.stderr
    assert (row.expires_at - row.created_at).total_seconds() == 120


@pytest.mark.parametrize("args, status, message", [
    (["--user", "nobody"], 1, "No user named 'nobody'"),
    ([], 1, "--user is required"),
    (["--user", ""], 1, "--user is required"),
    (["--user", "alice", "--scope", "nope"], 1, "Unknown scope"),
    (["--user", "alice", "--expires-in", "0"], 2, "--expires-in"),
    (["--user", "alice", "--expires-in", "soon"], 2, "--expires-in"),
])
def test_create_token_errors(app: Flask, user: Any, args: list[str], status: int, message: str) -> None:
    result = cli(app, "create-token", *args)
    assert result.exit_code == status
    assert message in result.output and "Traceback" not in result.output
    assert token_rows(app) == []


# -- list -------------------------------------------------------------------------------
def test_list_shows_tokens_and_keys_without_secrets(app: Flask, user: Any, other_user: Any, issue: Any) -> None:
    alice_token = json.loads(cli(app, "create-token", "--user", "alice", "--name", "mine", "--json").output)
    bob_key = json.loads(cli(app, "create-key", "--user", "bob", "--json").output)
    listed = json.loads(cli(app, "list", "--json").output)["tokens"]
    assert {(t["id"], t["kind"], t["user_id"]) for t in listed} == {
        (alice_token["id"], "token", user.id), (bob_key["id"], "key", other_user.id)}
    assert alice_token["token"] not in json.dumps(listed) and bob_key["key"] not in json.dumps(listed)
    only_alice = json.loads(cli(app, "list", "--user", "alice", "--json").output)["tokens"]
    assert [(t["id"], t["name"], t["via"]) for t in only_alice] == [(alice_token["id"], "mine", "cli")]
    text = cli(app, "list").output
    assert alice_token["id"] in text and bob_key["id"] in text and alice_token["token"] not in text
    # A header, and the owners by name (not their row ids).
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "KIND", "VIA", "OWNER", "EXPIRES", "SCOPES", "NAME"]
    by_id = {line.split()[0]: line.split() for line in lines[1:]}
    assert by_id[alice_token["id"]][1:4] == ["token", "cli", "alice"]
    assert by_id[alice_token["id"]][-1] == "mine"
    assert by_id[bob_key["id"]][1:4] == ["key", "cli", "bob"]
    assert {t["owner"] for t in listed} == {"alice", "bob"}
    assert cli(app, "list-keys", "--user", "alice").output == "No keys.\n"
    unknown = cli(app, "list", "--user", "nobody")
    assert unknown.exit_code == 1 and "No user named 'nobody'" in unknown.output


def test_list_all_includes_revoked_and_expired(app: Flask, user: Any) -> None:
    live = json.loads(cli(app, "create-token", "--user", "alice", "--json").output)["id"]
    revoked = json.loads(cli(app, "create-token", "--user", "alice", "--json").output)["id"]
    expired = json.loads(cli(app, "create-token", "--user", "alice", "--json").output)["id"]
    cli(app, "revoke", revoked)
    row_of(app, expired).expires_at = now() - dt.timedelta(seconds=1)
    db.session.commit()
    assert [t["id"] for t in json.loads(cli(app, "list", "--json").output)["tokens"]] == [live]
    everything = json.loads(cli(app, "list", "--all", "--json").output)["tokens"]
    assert {t["id"] for t in everything} == {live, revoked, expired}


# -- revoke -----------------------------------------------------------------------------
def test_revoke_token_and_unknown_id(app: Flask, client: Any, user: Any, issue: Any) -> None:
    token = issue(user)
    token_id = token_rows(app)[0].id
    result = cli(app, "revoke", token_id)
    assert (result.exit_code, result.output.strip()) == (0, f"revoked: {token_id}")
    assert token_rows(app)[0].revoked_at is not None
    assert client.get("/plain", headers=auth(token)).status_code == 401
    for unknown in ("does-not-exist", token_id, ""):
        refused = cli(app, "revoke", unknown)
        assert refused.exit_code == 1 and "No live token or key" in refused.output
    assert cli(app, "revoke").exit_code == 2  # the id is a required argument


# -- purge-expired / notify-expiring ------------------------------------------------------
@pytest.fixture
def expiring_signals(app: Flask) -> Iterator[list[Any]]:
    received: list[Any] = []

    def receiver(sender: Any, token: Any, **extra: Any) -> None:
        received.append(token.id)

    signals.token_expiring.connect(receiver, app)
    yield received
    signals.token_expiring.disconnect(receiver, app)


def test_purge_expired(app: Flask, user: Any, issue: Any, expiring_signals: list[Any]) -> None:
    service = app.extensions["apitokens"].service
    live = service.issue(user, via="cli").info.id
    never = service.issue(user, via="cli", kind="key").info.id
    soon = service.issue(user, via="cli").info.id
    expired = service.issue(user, via="cli").info.id
    revoked = service.issue(user, via="cli").info.id
    soon_row = row_of(app, soon)  # a 90-day token's last hour
    soon_row.created_at, soon_row.expires_at = now() - dt.timedelta(days=89), now() + dt.timedelta(seconds=3600)
    db.session.commit()
    row_of(app, expired).expires_at = now() - dt.timedelta(seconds=1)
    db.session.commit()
    service.revoke([revoked])

    kept = cli(app, "purge-expired", "--revoked-older-than-days", "30")
    assert kept.exit_code == 0
    assert kept.output.strip() == "purged: 1  expiring-soon warnings sent: 1"
    assert expiring_signals == [soon]
    assert {row.id for row in token_rows(app)} == {live, never, soon, revoked}

    result = cli(app, "purge-expired")
    assert result.output.strip() == "purged: 1  expiring-soon warnings sent: 0"  # warned once only
    assert {row.id for row in token_rows(app)} == {live, never, soon}
    assert cli(app, "purge-expired", "--revoked-older-than-days", "-1").exit_code == 2


def test_notify_expiring(app: Flask, user: Any, expiring_signals: list[Any]) -> None:
    service = app.extensions["apitokens"].service
    soon = service.issue(user, via="cli", expires_in=30 * 86400).info.id
    service.issue(user, via="cli", expires_in=30 * 86400)
    soon_row = row_of(app, soon)  # its last day
    soon_row.created_at, soon_row.expires_at = now() - dt.timedelta(days=29), now() + dt.timedelta(days=1)
    db.session.commit()
    result = cli(app, "notify-expiring")
    assert (result.exit_code, result.output.strip()) == (0, "expiring-soon warnings sent: 1")
    assert expiring_signals == [soon]
    assert cli(app, "notify-expiring").output.strip() == "expiring-soon warnings sent: 0"
