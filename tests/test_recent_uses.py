"""Where a token is used: ``recentUses`` in ``GET /api/tokens`` and on the token
page, the 5 most recent distinct addresses, written only with last-used."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_apitokens.models import utcnow
from tests import hostapp
from tests.helpers import auth, basic, counted_queries, login, token_rows

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def use(client: Any, token: str, ip: str, agent: str | None = None) -> None:
    headers = {**auth(token), **({"User-Agent": agent} if agent is not None else {})}
    response = client.get("/plain", headers=headers, environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 200


def listed(app: Flask, username: str = "alice") -> list[dict[str, Any]]:
    """``GET /api/tokens`` with a session cookie (a token would be a use itself)."""
    client = app.test_client()
    login(client, username)
    response = client.get("/api/tokens")
    assert response.status_code == 200
    return response.json["tokens"]  # type: ignore[no-any-return]


def use_rows(app: Flask) -> list[Any]:
    table = app.extensions["apitokens"].models.use_table
    hostapp.db.session.expire_all()
    return list(hostapp.db.session.execute(sa.select(table).order_by(table.c.slot)))


def test_five_most_recent_distinct_addresses_newest_first(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LAST_USED_INTERVAL=0)
    client = app.test_client()
    with app.app_context():
        alice = hostapp.make_user("alice")
        token = app.extensions["apitokens"].service.issue(alice, via="cli").token
        for n in range(1, 8):  # seven addresses: the first two fall off
            use(client, token, f"192.0.2.{n}", f"agent/{n}")
        use(client, token, "192.0.2.4", "agent/4 again")  # a known address moves up, not in twice

        (item,) = listed(app)
        uses = item["recentUses"]
        assert [u["ip"] for u in uses] == ["192.0.2.4", "192.0.2.7", "192.0.2.6", "192.0.2.5", "192.0.2.3"]
        assert [u["userAgent"] for u in uses] == ["agent/4 again", "agent/7", "agent/6", "agent/5", "agent/3"]
        times = [dt.datetime.strptime(u["lastUsedOn"], ISO) for u in uses]
        assert times == sorted(times, reverse=True)
        assert abs((times[0] - utcnow()).total_seconds()) < 30
        assert uses[0]["lastUsedOn"] == item["lastUsedOn"]
        assert len(use_rows(app)) == 5  # never more rows than that


def test_written_no_more_often_than_last_used(make_app: Callable[..., Flask]) -> None:
    app = make_app()  # APITOKENS_LAST_USED_INTERVAL = 300
    client = app.test_client()
    with app.app_context():
        alice = hostapp.make_user("alice")
        token = app.extensions["apitokens"].service.issue(alice, via="cli").token
        with counted_queries(app) as first:
            use(client, token, "192.0.2.1", "curl/8")
        with counted_queries(app) as second:
            use(client, token, "192.0.2.2", "curl/9")
        # The lookup, the last-used write and the one extra statement; then the lookup alone.
        assert len(first) == 3 and "apitokens_token_use" in first[2]
        assert len(second) == 1
        (item,) = listed(app)
        assert item["recentUses"] == [{"ip": "192.0.2.1", "userAgent": "curl/8", "lastUsedOn": item["lastUsedOn"]}]


def test_odd_user_agents_and_no_user_agent(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LAST_USED_INTERVAL=0)
    client = app.test_client()
    with app.app_context():
        alice = hostapp.make_user("alice")
        token = app.extensions["apitokens"].service.issue(alice, via="cli").token
        client.environ_base.pop("HTTP_USER_AGENT", None)
        use(client, token, "192.0.2.1")
        use(client, token, "2001:db8::1", "x" * 5000)
        use(client, token, "192.0.2.3", "Mozilla/5.0 \u00e9t\u00e9 \U0001f600")
        uses = listed(app)[0]["recentUses"]
        assert [u["ip"] for u in uses] == ["192.0.2.3", "2001:db8::1", "192.0.2.1"]
        assert uses[0]["userAgent"] == "Mozilla/5.0 \u00e9t\u00e9 \U0001f600"
        assert uses[1]["userAgent"] == "x" * 200
        assert uses[2]["userAgent"] is None


def test_new_and_unused_tokens_have_none_and_owners_see_only_their_own(app: Flask, client: Any, user: Any,
                                                                       other_user: Any,
                                                                       issue: Callable[..., str]) -> None:
    unused = issue(user, name="unused")
    theirs = issue(other_user, name="theirs")
    use(client, theirs, "198.51.100.1", "bob-agent")
    assert [(t["name"], t["recentUses"]) for t in listed(app)] == [("unused", [])]
    assert unused
    assert [t["recentUses"][0]["ip"] for t in listed(app, "bob")] == ["198.51.100.1"]


def test_revoking_keeps_the_uses_and_purging_removes_them(app: Flask, client: Any, user: Any,
                                                          issue: Callable[..., str]) -> None:
    token = issue(user, expires_in=60)
    kept = issue(user)
    use(client, token, "192.0.2.1", "a")
    use(client, kept, "192.0.2.2", "b")
    service = app.extensions["apitokens"].service
    (row,) = [r for r in token_rows(app) if r.created_at and r.expires_at and r.expires_at < utcnow() + dt.timedelta(
        seconds=120)]
    service.revoke([row.id], reason="test")
    assert len(use_rows(app)) == 2  # where a revoked token was used is the audit
    row = hostapp.db.session.get(service.models.Token, row.id)
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    hostapp.db.session.commit()
    assert service.purge_expired() == 1
    remaining = use_rows(app)
    assert [(r.ip, r.user_agent) for r in remaining] == [("192.0.2.2", "b")]


def test_the_token_page_shows_recent_uses(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LOGIN_VIEW="/login", APITOKENS_LAST_USED_INTERVAL=0)
    client = app.test_client()
    with app.app_context():
        alice = hostapp.make_user("alice")
        token = app.extensions["apitokens"].service.issue(alice, via="cli", name="deploy").token
        use(client, token, "203.0.113.5", "deploy-bot/1.2 <script>")
        use(client, token, "203.0.113.6", "curl/8.5")
        login(client)
        page = client.get("/tokens").get_data(as_text=True)
    uses = page[page.index('aria-label="Recent addresses"'):]
    uses = uses[:uses.index("</ul>")]
    assert uses.index("203.0.113.6") < uses.index("203.0.113.5")
    assert "deploy-bot/1.2 &lt;script&gt;" in uses and "<script>" not in uses
    assert "curl/8.5" in uses


def test_every_kind_records_its_uses(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_LAST_USED_INTERVAL=0)
    client = app.test_client()
    with app.app_context():
        alice = hostapp.make_user("alice")
        service = app.extensions["apitokens"].service
        access = service.issue(alice, via="oauth2", kind="oauth2").token
        jwt = client.post("/api/user-token", headers=basic()).json["user-token"]
        for credential, ip in ((access, "192.0.2.10"), (jwt, "192.0.2.11")):
            response = client.get("/plain", headers={**auth(credential, "Bearer"), "User-Agent": "app/1"},
                                  environ_base={"REMOTE_ADDR": ip})
            assert response.status_code == 200
        uses = {item["kind"]: item["recentUses"] for item in listed(app)}
        assert [(u["ip"], u["userAgent"]) for u in uses["oauth2"]] == [("192.0.2.10", "app/1")]
        assert [u["ip"] for u in uses["user-token"]] == ["192.0.2.11"]
