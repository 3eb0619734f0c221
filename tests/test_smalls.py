"""Issue 15, item 9's smaller points: no ``Retry-After`` on a success, click
help without reST markup, and ``POST /oauth/revoke``'s
``unsupported_token_type`` answered 400 (RFC 7009)."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask

from flask_apitokens.cli import apitokens_cli


def test_no_retry_after_on_a_success(app: Flask, client: Any, user: Any) -> None:
    good = client.post("/api/authenticate/userpass", json={"username": "alice", "password": "pw-correct"})
    assert good.status_code == 200
    assert "X-RateLimit-Limit" in good.headers  # the limit's headers stay: they are information
    assert "Retry-After" not in good.headers
    wrong = client.post("/api/authenticate/userpass", json={"username": "alice", "password": "no"})
    assert wrong.status_code == 401 and "Retry-After" not in wrong.headers


def test_retry_after_on_429(make_app: Any) -> None:
    app = make_app(APITOKENS_RATE_LIMIT="1/minute")
    client = app.test_client()
    body = {"username": "nobody", "password": "x"}
    assert "Retry-After" not in client.post("/api/authenticate/userpass", json=body).headers
    limited = client.post("/api/authenticate/userpass", json=body)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def commands(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = [group]
    for command in group.commands.values():
        found += commands(command) if isinstance(command, click.Group) else [command]
    return found


def test_click_help_shows_no_rst_markup(app: Flask) -> None:
    runner = app.test_cli_runner()
    for command in commands(apitokens_cli):
        path = [] if command is apitokens_cli else [command.name or ""]
        result = runner.invoke(args=["apitokens", *path, "--help"])
        assert result.exit_code == 0, result.output
        for markup in ("``", ":param", ":class:", ":func:", ":meth:", ".. "):
            assert markup not in result.output, (command.name, markup, result.output)


def test_revoke_with_an_unknown_token_type_hint_is_400(app: Flask, client: Any, user: Any) -> None:
    from flask_apitokens.oauth2 import clients

    made = clients.create_client(name="Revoker", public=False, scopes=[], redirect_uris=["http://127.0.0.1:9/cb"])
    response = client.post("/oauth/revoke", data={"token": "apo_x", "token_type_hint": "cookie"},
                           auth=(made.client.client_id, made.client_secret or ""))
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_token_type"
    assert "WWW-Authenticate" not in response.headers
    known = client.post("/oauth/revoke", data={"token": "apo_x", "token_type_hint": "access_token"},
                        auth=(made.client.client_id, made.client_secret or ""))
    assert known.status_code == 200
