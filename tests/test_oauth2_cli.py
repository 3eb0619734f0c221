"""``flask apitokens create-client / list-clients / delete-client``."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_apitokens import errors
from flask_apitokens.cli import apitokens_cli
from flask_apitokens.oauth2 import clients
from tests import hostapp
from tests.helpers import auth, token_rows


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(apitokens_cli, list(args))


def status(app: Flask, client: Any, path: str, headers: dict[str, str]) -> int:
    return int(client.get(path, headers=headers).status_code)


def client_rows(app: Flask) -> list[Any]:
    state = app.extensions["apitokens"]
    state.db.session.expire_all()
    return list(state.db.session.execute(sa.select(state.oauth2_models.Client)).scalars())


def test_create_public_client_json(app: Flask) -> None:
    result = run(app, "create-client", "--name", "Mobile app", "--redirect-uri", "http://127.0.0.1:5000/cb",
                 "--redirect-uri", "https://app.example/cb", "--scope",
                 "reports:read", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"client_id", "client_secret"} and data["client_secret"] is None
    (row,) = client_rows(app)
    assert row.client_id == data["client_id"] and row.public and row.secret_digest is None
    assert row.name == "Mobile app" and row.scope_list == ["reports:read"]
    assert row.redirect_uri_list == ["http://127.0.0.1:5000/cb", "https://app.example/cb"]


def test_create_confidential_client_prints_the_secret_once(app: Flask) -> None:
    result = run(app, "create-client", "--name", "Server app", "--redirect-uri", "https://app.example/cb",
                 "--confidential", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (row,) = client_rows(app)
    assert data["client_secret"] and not row.public
    # Only a digest is stored, and it checks the secret.
    assert data["client_secret"].encode() not in row.secret_digest and len(row.secret_digest) == 32
    assert row.check_client_secret(data["client_secret"]) and not row.check_client_secret("wrong")
    assert not row.check_client_secret("\u00e9")
    listed = run(app, "list-clients", "--json")
    assert data["client_secret"] not in listed.output

    text = run(app, "create-client", "--name", "Other", "--redirect-uri", "https://o.example/cb", "--confidential")
    assert text.exit_code == 0 and "client_id: " in text.stdout and "client_secret: " in text.stdout


def test_list_clients(app: Flask) -> None:
    assert json.loads(run(app, "list-clients", "--json").stdout) == {"clients": []}
    clients.create_client(name="A", redirect_uris=["https://a.example/cb"], public=True, scopes=["reports:read"])
    clients.create_client(name="B", redirect_uris=["https://b.example/cb"], public=False)
    data = json.loads(run(app, "list-clients", "--json").stdout)["clients"]
    assert [(c["name"], c["public"]) for c in data] == [("A", True), ("B", False)]
    assert data[0]["redirect_uris"] == ["https://a.example/cb"] and data[0]["scopes"] == ["reports:read"]
    assert "client_secret" not in json.dumps(data)
    text = run(app, "list-clients").stdout
    assert "A" in text and "confidential" in text


def test_delete_client_revokes_its_tokens(app: Flask, user: Any, client: Any) -> None:
    made = clients.create_client(name="A", redirect_uris=["https://a.example/cb"], public=True)
    service = app.extensions["apitokens"].service
    issued = service.issue(user, via="oauth2", kind="oauth2", client_id=made.client.client_id)
    other = service.issue(user, via="cli")
    assert status(app, client, "/plain", auth(issued.token, "bearer")) == 200
    result = run(app, "delete-client", made.client.client_id)
    assert result.exit_code == 0, result.output
    assert client_rows(app) == []
    assert status(app, client, "/plain", auth(issued.token, "bearer")) == 401
    assert status(app, client, "/plain", auth(other.token)) == 200
    assert {row.id: row.revoked_at is not None for row in token_rows(app)} == {issued.info.id: True,
                                                                             other.info.id: False}


def test_cli_errors_exit_1(app: Flask) -> None:
    cases = [
        ("create-client", "--redirect-uri", "https://a.example/cb"),
        ("create-client", "--name", "A"),
        ("create-client", "--name", "A", "--redirect-uri", "not a url"),
        ("create-client", "--name", "A", "--redirect-uri", "ftp://a.example/cb"),
        ("create-client", "--name", "A", "--redirect-uri", "https://a.example/cb#frag"),
        ("create-client", "--name", "A", "--redirect-uri", "https://a.example/cb", "--scope", "undeclared"),
        ("create-client", "--name", " ", "--redirect-uri", "https://a.example/cb"),
        ("create-client", "--name", "A", "--redirect-uri", "https://a.example/\x00cb"),
        ("create-client", "--name", "A", "--redirect-uri", "https://a.example/\x1bcb"),
        ("create-client", "--name", "A\x00B", "--redirect-uri", "https://a.example/cb"),
        ("delete-client", "no-such-client"),
        ("delete-client",),
    ]
    for args in cases:
        result = run(app, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "Error" in result.output, (args, result.output)
    assert client_rows(app) == []
    made = run(app, "create-client", "--name", "A", "--redirect-uri", "https://a.example/cb", "--client-id", "fixed")
    assert made.exit_code == 0
    again = run(app, "create-client", "--name", "A", "--redirect-uri", "https://a.example/cb", "--client-id", "fixed")
    assert again.exit_code == 1 and "exists already" in again.output


def test_tables_exist_even_when_the_server_is_switched_off(make_app: Any) -> None:
    app = make_app(APITOKENS_OAUTH2_SERVER=False)
    with app.app_context():
        assert sa.inspect(hostapp.db.engine).has_table("apitokens_oauth2_client")
        result = app.test_cli_runner().invoke(apitokens_cli, ["list-clients", "--json"])
        assert result.exit_code == 0 and json.loads(result.stdout) == {"clients": []}


def test_a_client_registered_by_another_process_meanwhile_is_client_exists(app: Flask) -> None:
    """Four gunicorn workers starting the demo each register ``demo-client``: the
    one that loses the race between the existence check and its insert gets
    ``client_exists`` (not a 503), and its session stays usable."""
    state = app.extensions["apitokens"]
    Client = state.oauth2_models.Client
    session = state.db.session()

    def other_worker_inserts(*_: Any) -> None:
        with state.db.engine.begin() as other:
            other.execute(sa.insert(Client).values(client_id="raced", name="Other worker", public=True,
                                                   redirect_uris="https://a.example/cb", scopes=""))

    sa.event.listen(session, "before_flush", other_worker_inserts, once=True)
    try:
        clients.create_client(client_id="raced", name="Mine", public=True, redirect_uris=["https://a.example/cb"])
    except errors.BadRequest as exc:
        assert exc.code == "client_exists"
    else:
        raise AssertionError("the second insert of one client id was accepted")
    assert [row.name for row in client_rows(app)] == ["Other worker"]
    assert clients.create_client(name="Next", public=True, redirect_uris=["https://a.example/cb"]).client.name == "Next"
