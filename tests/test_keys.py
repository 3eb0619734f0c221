"""API keys (Deskpro): made by an administrator with ``flask apitokens create-key``,
sent as ``Authorization: key X:XXX``, revocable, no expiry unless given one."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.helpers import auth, cli, login, token_rows
from tests.hostapp import make_user


def create_key(app: Flask, *args: str) -> dict[str, Any]:
    result = cli(app, "create-key", "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_create_key_prints_one_json_object_and_stores_only_a_digest(app: Flask, user: Any) -> None:
    created = create_key(app, "--user", "alice", "--name", "deploy bot", "--scope", "reports:read")
    assert set(created) == {"id", "key", "expiresOn", "scopes"}
    assert created["key"].startswith("apk_" + created["id"] + ":")
    assert (created["expiresOn"], created["scopes"]) == (None, ["reports:read"])
    [row] = token_rows(app)
    assert (row.id, row.kind, row.via, row.name, row.user_id, row.expires_at) == (
        created["id"], "key", "cli", "deploy bot", user.id, None)
    secret = created["key"].split(":", 1)[1]
    assert row.digest and secret.encode() not in row.digest and created["key"] not in repr(vars(row))


def test_key_works_on_key_required_and_token_required_views(app: Flask, client: Any, user: Any) -> None:
    key = create_key(app, "--user", "alice@example.com", "--scope", "reports:read")
    headers = auth(key["key"], "key")
    assert client.get("/keys-only", headers=headers).json == {"key": key["id"]}
    assert client.get("/plain", headers=headers).json == {"token": key["id"], "kind": "key"}
    assert client.get("/reports", headers=auth(key["key"], "KEY")).json["user"] == "alice"
    me = client.get("/api/me", headers=headers).json
    assert (me["username"], me["token"]["kind"]) == ("alice", "key")


def test_key_scopes_are_enforced(app: Flask, client: Any, user: Any) -> None:
    key = create_key(app, "--user", "alice")["key"]
    refused = client.get("/reports", headers=auth(key, "key"))
    assert (refused.status_code, refused.json["error"]) == (403, "insufficient_scope")


def test_scheme_confusion_is_refused_both_ways(app: Flask, client: Any, user: Any, issue: Any) -> None:
    key = create_key(app, "--user", "alice")["key"]
    token = issue(user)
    for credential, scheme in ((key, "token"), (key, "bearer"), (token, "key")):
        for path in ("/plain", "/keys-only"):
            response = client.get(path, headers=auth(credential, scheme))
            assert (response.status_code, response.json["error"]) == (401, "invalid_token"), (scheme, path)
            assert response.headers["WWW-Authenticate"]
    # A token in its own scheme is fine on token_required views, but not where only keys may call.
    assert client.get("/plain", headers=auth(token)).status_code == 200
    only_keys = client.get("/keys-only", headers=auth(token))
    assert (only_keys.status_code, only_keys.json["error"]) == (401, "invalid_token")
    assert client.get("/keys-only").status_code == 401


def test_revoked_by_cli_then_refused(app: Flask, client: Any, user: Any) -> None:
    key = create_key(app, "--user", "alice")
    headers = auth(key["key"], "key")
    assert client.get("/keys-only", headers=headers).status_code == 200
    result = cli(app, "revoke", key["id"])
    assert (result.exit_code, result.output.strip()) == (0, f"revoked: {key['id']}")
    assert token_rows(app)[0].revoked_at is not None
    for path in ("/keys-only", "/plain"):
        refused = client.get(path, headers=headers)
        assert (refused.status_code, refused.json["error"]) == (401, "invalid_token")
    again = cli(app, "revoke", key["id"])
    assert again.exit_code == 1 and "No live token or key" in again.output


def test_keys_never_expire_unless_given_an_expiry_and_skip_the_lifetime_cap(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_MAX_LIFETIME=3600)
    with app.app_context():
        make_user("alice")
        assert create_key(app, "--user", "alice")["expiresOn"] is None
        ten_years = 10 * 365 * 86400
        created = create_key(app, "--user", "alice", "--expires-in", str(ten_years))
        row = next(r for r in token_rows(app) if r.id == created["id"])
        assert (row.expires_at - row.created_at).total_seconds() == ten_years
        token = cli(app, "create-token", "--user", "alice", "--json", "--expires-in", str(ten_years))
        token_row = next(r for r in token_rows(app) if r.id == json.loads(token.output)["id"])
        assert (token_row.expires_at - token_row.created_at).total_seconds() == 3600  # tokens are capped


def test_key_default_expiry_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_KEY_EXPIRES_IN=600)
    with app.app_context():
        make_user("alice")
        created = create_key(app, "--user", "alice")
        [row] = token_rows(app)
        assert (row.expires_at - row.created_at).total_seconds() == 600
        assert created["expiresOn"].endswith("Z")


def test_expired_key_is_refused(app: Flask, client: Any, user: Any) -> None:
    key = create_key(app, "--user", "alice", "--expires-in", "60")
    [row] = token_rows(app)
    row.expires_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    app.extensions["apitokens"].db.session.commit()
    assert client.get("/keys-only", headers=auth(key["key"], "key")).status_code == 401


@pytest.mark.parametrize("args, message", [
    (["--user", "nobody"], "No user named 'nobody'"),
    ([], "--user is required"),
    (["--user", "alice", "--scope", "admin"], "Unknown scope: 'admin'"),
])
def test_create_key_errors_exit_1_without_traceback(app: Flask, user: Any, args: list[str], message: str) -> None:
    result = cli(app, "create-key", "--json", *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert token_rows(app) == []


def test_create_key_text_output_shows_the_key_once(app: Flask, user: Any) -> None:
    result = cli(app, "create-key", "--user", "alice")
    assert result.exit_code == 0
    [row] = token_rows(app)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"key: apk_{row.id}:")
    assert lines[1] == f"id: {row.id}  expires: never"
    assert "not be shown again" in result.stderr


def test_list_keys_lists_keys_only(app: Flask, user: Any, other_user: Any, issue: Any) -> None:
    alice_key = create_key(app, "--user", "alice", "--name", "a")
    bob_key = create_key(app, "--user", "bob", "--name", "b")
    issue(user)  # a token: not a key
    listed = json.loads(cli(app, "list-keys", "--json").output)["keys"]
    assert sorted(k["id"] for k in listed) == sorted([alice_key["id"], bob_key["id"]])
    assert all(k["kind"] == "key" and "key" not in k and "digest" not in k for k in listed)
    only_bob = json.loads(cli(app, "list-keys", "--user", "bob", "--json").output)["keys"]
    assert [(k["id"], k["user_id"], k["name"]) for k in only_bob] == [(bob_key["id"], other_user.id, "b")]
    cli(app, "revoke", bob_key["id"])
    assert [k["id"] for k in json.loads(cli(app, "list-keys", "--json").output)["keys"]] == [alice_key["id"]]
    everything = json.loads(cli(app, "list-keys", "--all", "--json").output)["keys"]
    assert len(everything) == 2
    text = cli(app, "list-keys").output
    assert alice_key["id"] in text and bob_key["id"] not in text and alice_key["key"] not in text
    unknown = cli(app, "list-keys", "--user", "nobody")
    assert unknown.exit_code == 1 and "No user named" in unknown.output


def test_keys_are_not_in_the_users_token_list(app: Flask, client: Any, user: Any) -> None:
    create_key(app, "--user", "alice")
    login(client)
    assert client.get("/api/tokens").json == {"tokens": []}
