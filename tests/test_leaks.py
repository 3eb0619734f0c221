"""``POST /api/credentials/revoke``: anyone reports leaked credentials; live ones
are revoked, the owner is told, and the answer never says what was live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_apitokens import crypto, signals
from flask_apitokens.leaks import LEAKED
from flask_apitokens.service import KEY, OAUTH2, REFRESH
from tests import hostapp
from tests.helpers import auth, basic, counted_queries, login, token_rows

ROUTE = "/api/credentials/revoke"
ACCEPTED = {"status": "accepted",
            "message": "Thank you. Every live credential of this application in the report is now revoked."}


def report(client: Any, credentials: Any, **kwargs: Any) -> Any:
    return client.post(ROUTE, json={"credentials": credentials}, **kwargs)


def rows_by_id(app: Flask) -> dict[str, Any]:
    return {row.id: row for row in token_rows(app)}


def user_token(client: Any, login: str = "alice") -> str:
    response = client.post("/api/user-token", headers=basic(login))
    assert response.status_code == 201, response.json
    return str(response.json["user-token"])


def test_every_kind_of_live_credential_is_revoked_at_once(app: Flask, client: Any, user: Any, other_user: Any,
                                                         issue: Callable[..., str]) -> None:
    service = app.extensions["apitokens"].service
    token = issue(user, name="laptop")
    key = service.issue(user, via="cli", kind=KEY).token
    access = service.issue(user, via="oauth2", kind=OAUTH2).token
    refresh = service.issue(user, via="oauth2", kind=REFRESH).token
    jwt = user_token(client)
    untouched = issue(other_user)
    assert client.get("/plain", headers=auth(token)).status_code == 200

    response = report(client, [token, key, access, refresh, jwt, "not a token at all"])
    assert response.status_code == 202
    assert response.json == ACCEPTED

    rows = rows_by_id(app)
    leaked = {crypto.parse(t, p).public_id for t, p in  # type: ignore[union-attr]
              ((token, "apt_"), (key, "apk_"), (access, "apo_"), (refresh, "apr_"))}
    jwt_row = next(row for row in rows.values() if row.kind == "user-token")
    leaked.add(jwt_row.id)
    for token_id in leaked:
        assert rows[token_id].revoked_at is not None and rows[token_id].revoked_reason == LEAKED
    others = [row for row in rows.values() if row.id not in leaked]
    assert others and all(row.revoked_at is None for row in others)
    # Refused at once, everywhere.
    assert client.get("/plain", headers=auth(token)).status_code == 401
    assert client.get("/keys-only", headers=auth(key, "key")).status_code == 401
    assert client.get("/plain", headers=auth(access, "Bearer")).status_code == 401
    assert client.get("/plain", headers=auth(jwt, "Bearer")).status_code == 401
    assert client.get("/plain", headers=auth(untouched)).status_code == 200


def test_a_right_id_with_a_wrong_secret_revokes_nothing_and_answers_the_same(app: Flask, client: Any, user: Any,
                                                                           issue: Callable[..., str]) -> None:
    token = issue(user)
    parsed = crypto.parse(token, "apt_")
    assert parsed is not None
    forged = crypto.format_token("apt_", parsed.public_id, crypto.random_string(crypto.SECRET_LENGTH))
    assert crypto.parse(forged, "apt_") is not None  # a well-formed token, checksum and all
    truncated = token[:-1]

    for attempt in ([forged], [truncated], [parsed.public_id], [token.upper()]):
        response = report(client, attempt)
        assert (response.status_code, response.json) == (202, ACCEPTED)
    assert all(row.revoked_at is None for row in token_rows(app))
    assert client.get("/plain", headers=auth(token)).status_code == 200
    # The same answer when it was live.
    response = report(client, [token])
    assert (response.status_code, response.json) == (202, ACCEPTED)
    assert token_rows(app)[0].revoked_reason == LEAKED


def test_revoked_or_expired_credentials_are_left_as_they_were(app: Flask, client: Any, user: Any,
                                                            issue: Callable[..., str]) -> None:
    token = issue(user)
    assert client.delete("/api/tokens", headers=auth(issue(user, scopes=["tokens"]))).status_code == 200
    response = report(client, [token])
    assert (response.status_code, response.json) == (202, ACCEPTED)
    assert {row.revoked_reason for row in token_rows(app)} == {"logout_everywhere"}


def test_credential_leaked_signal_tells_the_owner_and_the_reporter(app: Flask, client: Any, user: Any,
                                                                  issue: Callable[..., str]) -> None:
    token = issue(user, name="ci", scopes=["reports:read"])
    heard: list[dict[str, Any]] = []
    revoked: list[dict[str, Any]] = []

    def leaked(sender: Flask, **payload: Any) -> None:
        heard.append(payload)

    def on_revoked(sender: Flask, **payload: Any) -> None:
        revoked.append(payload)

    with signals.credential_leaked.connected_to(leaked, app), signals.token_revoked.connected_to(on_revoked, app):
        assert report(client, [token, token], environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 202
    assert len(heard) == 1  # once per credential, even reported twice
    payload = heard[0]
    assert set(payload) == {"token", "user_id", "reporter", "source", "url"}
    assert (payload["user_id"], payload["reporter"], payload["source"], payload["url"]) == (
        user.id, "198.51.100.7", "report", None)
    assert (payload["token"].id, payload["token"].name, payload["token"].scopes) == (
        token_rows(app)[0].id, "ci", frozenset({"reports:read"}))
    assert "apt_" not in repr(payload)  # never the secret
    assert revoked == [{"token_ids": [token_rows(app)[0].id], "user_id": None, "reason": LEAKED}]


@pytest.mark.parametrize("shape", [
    lambda token: {},
    lambda token: {"credentials": token},
    lambda token: {"credentials": []},
    lambda token: {"credentials": [token, 2]},
    lambda token: {"credentials": [token, None]},
    lambda token: {"credentials": [token] + ["x"] * 1000},
    lambda token: {"credentials": {"token": token}},
    lambda token: {"tokens": [token]},
])
def test_other_shapes_are_400_json_and_revoke_nothing(app: Flask, client: Any, user: Any,
                                                     issue: Callable[..., str], shape: Any) -> None:
    token = issue(user)
    response = client.post(ROUTE, json=shape(token))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_field" and "1 to 1000 strings" in response.json["message"]
    assert token_rows(app)[0].revoked_at is None


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("[]", "application/json", 400),
    ("{'credentials': []}", "application/json", 400),
    ("credentials=apt_x", "application/x-www-form-urlencoded", 415),
    ("\xff", "application/json", 400),
])
def test_bodies_that_are_no_json_object_are_4xx_json(client: Any, data: str, content_type: str, status: int) -> None:
    response = client.post(ROUTE, data=data, content_type=content_type)
    assert response.status_code == status
    assert set(response.json) == {"error", "message"}


def test_a_thousand_junk_strings_cost_no_query_and_forged_ones_one(make_app: Callable[..., Flask]) -> None:
    # A report of 1,000 real-looking tokens is about 70 KB: over the default body limit.
    app = make_app(APITOKENS_MAX_BODY_SIZE=128 * 1024)
    client = app.test_client()
    with app.app_context():
        token = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
        junk = [f"apt_{i:012d}:{'x' * 43}abcdef" for i in range(1000)]  # the right shape, a wrong checksum
        junk[0] = token[:-1] + ("a" if token[-1] != "a" else "b")
        with counted_queries(app) as seen:
            assert report(client, junk).status_code == 202
        assert seen == []

        # Well-formed (right checksums) but unknown, and one live token: one lookup for all.
        forged = [crypto.generate("apt_")[0] for _ in range(999)] + [token]
        with counted_queries(app) as seen:
            assert report(client, forged).status_code == 202
        lookups = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert " IN " in lookups[0].upper()
        # The lookup, then revoke's own statements (the family, the update, its children).
        assert len(seen) <= 5, seen
        assert token_rows(app)[0].revoked_reason == LEAKED

        # Forged only: exactly one query.
        with counted_queries(app) as seen:
            assert report(client, forged[:999]).status_code == 202
        assert len(seen) == 1, seen


def test_the_report_route_is_rate_limited_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="2/minute")
    client = app.test_client()
    with app.app_context():
        for _ in range(2):
            assert report(client, ["x"]).status_code == 202
        response = report(client, ["x"])
        assert response.status_code == 429
        assert response.json["error"] == "rate_limited" and "Retry-After" in response.headers
        # Another address has its own budget.
        assert report(client, ["x"], environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 202


def test_the_token_page_shows_a_reported_token_as_reported(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login")
    with app.app_context():
        alice = hostapp.make_user("alice")
        service = app.extensions["apitokens"].service
        leaked = service.issue(alice, via="cli", name="leaky").token
        service.issue(alice, via="cli", name="kept")
        client = app.test_client()
        assert report(client, [leaked]).status_code == 202
        login(client)
        page = client.get("/tokens").get_data(as_text=True)
    leaked_id = crypto.parse(leaked, "apt_").public_id  # type: ignore[union-attr]
    row = page[page.index(f'id="token-{leaked_id}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-state="revoked"' in row and 'data-reason="leaked"' in row
    assert "Revoked: reported as leaked" in row
    assert "Revoke<" not in row  # nothing left to revoke
    assert page.count("reported as leaked") == 1
