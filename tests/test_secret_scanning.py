"""GitHub's secret scanning partner endpoint (``POST /api/secret-scanning``),
against a local key server on 127.0.0.1 that publishes real P-256 public keys;
the tests sign alerts with the private halves, as GitHub does."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response
from werkzeug.serving import make_server

from flask_apitokens import crypto, secret_scanning, signals
from tests import hostapp
from tests.helpers import auth, token_rows

ROUTE = "/api/secret-scanning"


class KeyServer:
    """Serves ``{"public_keys": [...]}`` like api.github.com/meta/public_keys/secret_scanning."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.hits = 0
        self.body: bytes | None = None  # when set, served instead of the key list
        app = Flask("keyserver")
        app.add_url_rule("/meta/public_keys/secret_scanning", "keys", self.serve_keys)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/meta/public_keys/secret_scanning"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        self.keys[key_id] = ec.generate_private_key(ec.SECP256R1())
        return self.keys[key_id]

    def serve_keys(self) -> Response:
        self.hits += 1
        if self.body is not None:
            return Response(self.body, mimetype="application/json")
        listed = [{"key_identifier": key_id, "is_current": True,
                   "key": key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
                  for key_id, key in self.keys.items()]
        return Response(json.dumps({"public_keys": listed}), mimetype="application/json")

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


def signed(body: bytes, key: ec.EllipticCurvePrivateKey, key_id: str) -> dict[str, str]:
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return {"Github-Public-Key-Identifier": key_id,
            "Github-Public-Key-Signature": base64.b64encode(signature).decode(),
            "Content-Type": "application/json"}


def alert_body(*tokens: str) -> bytes:
    return json.dumps([{"token": token, "type": "apitokens_token",
                        "url": "https://github.com/octo/repo/blob/abc/config.py", "source": "content"}
                       for token in tokens]).encode()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.stop()


@pytest.fixture
def scanning(make_app: Callable[..., Flask], key_server: KeyServer) -> Iterator[Flask]:
    # Generous: a CI machine under load once took over 2 s to fetch from loopback
    # (tests of a slow key server set their own short timeout).
    app = make_app(APITOKENS_SECRET_SCANNING=True, APITOKENS_SECRET_SCANNING_KEYS_URL=key_server.url,
                   APITOKENS_SECRET_SCANNING_TIMEOUT=10)
    with app.app_context():
        yield app


def test_a_signed_alert_revokes_live_tokens_and_answers_githubs_labels(scanning: Flask,
                                                                       key_server: KeyServer) -> None:
    key = key_server.add_key("k1")
    alice = hostapp.make_user("alice")
    service = scanning.extensions["apitokens"].service
    live = service.issue(alice, via="cli", name="pushed").token
    kept = service.issue(alice, via="cli").token
    parsed = crypto.parse(live, "apt_")
    assert parsed is not None
    forged = crypto.format_token("apt_", parsed.public_id, crypto.random_string(crypto.SECRET_LENGTH))
    heard: list[dict[str, Any]] = []
    body = alert_body(live, forged, "apt_nonsense")
    client = scanning.test_client()
    with signals.credential_leaked.connected_to(lambda sender, **kw: heard.append(kw), scanning):
        response = client.post(ROUTE, data=body, headers=signed(body, key, "k1"),
                               environ_base={"REMOTE_ADDR": "192.30.252.1"})
    assert response.status_code == 200, response.json
    assert response.json == [
        {"token_hash": hashlib.sha256(live.encode()).hexdigest(), "token_type": "apitokens_token",
         "label": "true_positive"},
        {"token_hash": hashlib.sha256(forged.encode()).hexdigest(), "token_type": "apitokens_token",
         "label": "false_positive"},
        {"token_hash": hashlib.sha256(b"apt_nonsense").hexdigest(), "token_type": "apitokens_token",
         "label": "false_positive"},
    ]
    assert live not in response.get_data(as_text=True)  # named by its hash, never echoed
    assert client.get("/plain", headers=auth(live)).status_code == 401
    assert client.get("/plain", headers=auth(kept)).status_code == 200
    assert {row.id: row.revoked_reason for row in token_rows(scanning)} == {
        parsed.public_id: "leaked", crypto.parse(kept, "apt_").public_id: None}  # type: ignore[union-attr]
    assert len(heard) == 1
    assert (heard[0]["source"], heard[0]["reporter"], heard[0]["url"], heard[0]["user_id"]) == (
        "secret_scanning", "192.30.252.1", "https://github.com/octo/repo/blob/abc/config.py", alice.id)
    # The keys were fetched once, and are kept.
    response = client.post(ROUTE, data=body, headers=signed(body, key, "k1"))
    assert response.status_code == 200 and [item["label"] for item in response.json] == ["false_positive"] * 3
    assert key_server.hits == 1


@pytest.mark.parametrize("tamper", ["other key", "body changed", "not base64", "no headers", "signature of nothing"])
def test_a_bad_signature_is_400_and_revokes_nothing(scanning: Flask, key_server: KeyServer, tamper: str) -> None:
    key = key_server.add_key("k1")
    token = scanning.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
    body = alert_body(token)
    headers = signed(body, key, "k1")
    if tamper == "other key":
        headers = signed(body, ec.generate_private_key(ec.SECP256R1()), "k1")
    elif tamper == "body changed":
        body = body.replace(b"content", b"commits")
    elif tamper == "not base64":
        headers["Github-Public-Key-Signature"] = "%%%"
    elif tamper == "no headers":
        headers = {"Content-Type": "application/json"}
    else:
        headers["Github-Public-Key-Signature"] = base64.b64encode(b"\x30\x00").decode()
    response = scanning.test_client().post(ROUTE, data=body, headers=headers)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_signature" and response.json["message"]
    assert [row.revoked_at for row in token_rows(scanning)] == [None]


def test_an_unknown_key_id_is_fetched_again_then_refused(scanning: Flask, key_server: KeyServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_server.add_key("k1")
    token = scanning.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
    client = scanning.test_client()
    body = alert_body("apt_x")
    assert client.post(ROUTE, data=body, headers=signed(body, key, "k1")).status_code == 200
    assert key_server.hits == 1

    # GitHub starts signing with a key published since: within REFETCH_INTERVAL, not fetched again.
    new_key = key_server.add_key("k2")
    body = alert_body(token)
    response = client.post(ROUTE, data=body, headers=signed(body, new_key, "k2"))
    assert (response.status_code, response.json["error"], key_server.hits) == (400, "invalid_signature", 1)
    # Once the interval has passed, the unknown id is fetched again, and the alert is taken.
    monkeypatch.setattr(secret_scanning, "REFETCH_INTERVAL", 0.0)
    response = client.post(ROUTE, data=body, headers=signed(body, new_key, "k2"))
    assert response.status_code == 200 and response.json[0]["label"] == "true_positive"
    assert key_server.hits == 2
    # A key id GitHub does not publish at all: fetched again, then refused.
    stranger = ec.generate_private_key(ec.SECP256R1())
    response = client.post(ROUTE, data=body, headers=signed(body, stranger, "k3"))
    assert (response.status_code, response.json["error"], key_server.hits) == (400, "invalid_signature", 3)


def silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, listener.getsockname()[1]


@pytest.mark.parametrize("failure", ["closed port", "silent server", "not JSON", "too large", "no usable key"])
def test_an_unreachable_or_broken_key_server_is_503_and_nothing_is_revoked(
        make_app: Callable[..., Flask], key_server: KeyServer, failure: str, caplog: pytest.LogCaptureFixture) -> None:
    key = key_server.add_key("k1")
    url = key_server.url
    listener = None
    if failure == "closed port":
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/keys"
        probe.close()
    elif failure == "silent server":
        listener, port = silent_port()
        url = f"http://127.0.0.1:{port}/keys"
    elif failure == "not JSON":
        key_server.body = b"<html>maintenance</html>"
    elif failure == "too large":
        key_server.body = b'{"public_keys": [' + b" " * (2 * 1024 * 1024) + b"]}"
    else:
        key_server.body = json.dumps({"public_keys": [{"key_identifier": "k1", "key": "not a PEM"}]}).encode()
    app = make_app(APITOKENS_SECRET_SCANNING=True, APITOKENS_SECRET_SCANNING_KEYS_URL=url,
                   APITOKENS_SECRET_SCANNING_TIMEOUT=1)
    try:
        with app.app_context():
            token = app.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
            body = alert_body(token)
            started = time.monotonic()
            response = app.test_client().post(ROUTE, data=body, headers=signed(body, key, "k1"))
            assert time.monotonic() - started < 5
            assert response.status_code == 503
            assert response.json["error"] == "secret_scanning_keys_unavailable"
            assert [row.revoked_at for row in token_rows(app)] == [None]
            # The operator is told why (every alert is refused until it is fixed).
            why = [record.getMessage() for record in caplog.records if "cannot be used" in record.getMessage()]
            assert len(why) == 1 and url in why[0], why
    finally:
        if listener is not None:
            listener.close()


@pytest.mark.parametrize(("body", "error"), [
    (b"{}", "invalid_json"), (b"[]", "invalid_json"), (b"[1]", "invalid_json"),
    (b'[{"type": "x"}]', "invalid_json"), (b"not json", "invalid_json"),
])
def test_a_signed_body_of_another_shape_is_400(scanning: Flask, key_server: KeyServer, body: bytes,
                                               error: str) -> None:
    key = key_server.add_key("k1")
    response = scanning.test_client().post(ROUTE, data=body, headers=signed(body, key, "k1"))
    assert response.status_code == 400 and response.json["error"] == error


def test_the_endpoint_is_off_by_default(app: Flask, client: Any) -> None:
    response = client.post(ROUTE, data=b"[]", headers={"Content-Type": "application/json"})
    assert response.status_code == 404 and set(response.json) == {"error", "message"}


def test_the_openapi_document_describes_the_endpoint_when_it_is_on(scanning: Flask, key_server: KeyServer) -> None:
    from tests.openapi_check import check, document

    key = key_server.add_key("k1")
    client = scanning.test_client()
    doc = document(client)
    assert "/api/secret-scanning" in doc["paths"]
    body = alert_body("apt_x")
    check(doc, "/api/secret-scanning", "post", client.post(ROUTE, data=body, headers=signed(body, key, "k1")))
    check(doc, "/api/secret-scanning", "post", client.post(ROUTE, data=body, headers={}))


def test_a_body_over_the_limit_is_413_unread(make_app: Callable[..., Flask], key_server: KeyServer) -> None:
    key = key_server.add_key("k1")
    app = make_app(APITOKENS_SECRET_SCANNING=True, APITOKENS_SECRET_SCANNING_KEYS_URL=key_server.url,
                   APITOKENS_MAX_BODY_SIZE=1024)
    with app.app_context():
        body = alert_body(*["apt_" + "x" * 60] * 40)
        response = app.test_client().post(ROUTE, data=body, headers=signed(body, key, "k1"))
        assert response.status_code == 413 and response.json["error"] == "payload_too_large"
        assert key_server.hits == 0  # refused before anything else


def test_a_token_with_spaces_around_it_is_labelled_by_what_github_sent(scanning: Flask,
                                                                        key_server: KeyServer) -> None:
    key = key_server.add_key("k1")
    token = scanning.extensions["apitokens"].service.issue(hostapp.make_user("alice"), via="cli").token
    body = alert_body(f" {token}\n")
    response = scanning.test_client().post(ROUTE, data=body, headers=signed(body, key, "k1"))
    assert response.status_code == 200
    assert response.json == [{"token_hash": hashlib.sha256(f" {token}\n".encode()).hexdigest(),
                              "token_type": "apitokens_token", "label": "true_positive"}]
