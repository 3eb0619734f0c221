"""``POST/GET /api/user-token`` (Datasentinel's 24-hour JWT) and the JWT as a Bearer credential."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tests.helpers import PASSWORD, auth, basic, bearer, token_rows
from tests.hostapp import db, make_user

OTHER_KEY = b"another key, also long enough!!"


def create(client: Any, login: str = "alice", password: str = PASSWORD, **kwargs: Any) -> str:
    response = client.post("/api/user-token", headers=basic(login, password), **kwargs)
    assert response.status_code == 201, response.json
    return str(response.json["user-token"])


def signing_key(app: Flask) -> OctKey:
    return OctKey.import_key(app.extensions["apitokens"].settings.user_token_key)


def decode(app: Flask, token: str) -> jwt.Token:
    return jwt.decode(token, signing_key(app), algorithms=["HS256"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


def resign(app: Flask, token: str, **changes: Any) -> str:
    """The same claims with ``changes``, properly signed with the app's own key."""
    claims = {**decode(app, token).claims, **changes}
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, signing_key(app))


def record(app: Flask, jti: str) -> Any:
    return next(row for row in token_rows(app) if row.id == jti)


def assert_basic_401(response: Any, code: str | None = None) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'
    assert response.json["error"] in ((code,) if code else ("unauthorized", "invalid_credentials"))
    assert response.json["message"]


# -- POST /api/user-token -----------------------------------------------------------
def test_create_returns_a_24_hour_hs256_jwt_with_every_claim(app: Flask, client: Any, user: Any) -> None:
    before = int(time.time())
    response = client.post("/api/user-token", headers=basic())
    assert response.status_code == 201
    assert set(response.json) == {"user-token"}
    assert response.headers["Cache-Control"] == "no-store"
    token = decode(app, response.json["user-token"])
    assert token.header == {"alg": "HS256", "typ": "JWT"}
    claims = token.claims
    assert set(claims) == {"iat", "exp", "user", "email", "database", "jti"}
    assert claims["user"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["database"] == "Acme"
    assert before - 1 <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 86400
    row = record(app, claims["jti"])
    assert (row.kind, row.via, row.user_id, row.digest, row.revoked_at) == ("user-token", "user-token", user.id,
                                                                           None, None)
    assert int(row.expires_at.replace(tzinfo=dt.timezone.utc).timestamp()) == claims["exp"]
    assert response.json["user-token"] not in json.dumps([str(v) for v in vars(row).values()])


def test_create_by_email_and_listed_with_the_other_tokens(app: Flask, client: Any, user: Any) -> None:
    token = create(client, "ALICE@example.com")
    jti = decode(app, token).claims["jti"]
    client.post("/login", data={"username": "alice"})
    listed = client.get("/api/tokens").json["tokens"]
    assert [(t["id"], t["kind"], t["via"]) for t in listed] == [(jti, "user-token", "user-token")]


def test_expiry_and_scopes_follow_settings_and_body(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_USER_TOKEN_EXPIRES_IN=600)
    with app.app_context():
        make_user("alice")
        client = app.test_client()
        claims = decode(app, create(client)).claims
        assert claims["exp"] - claims["iat"] == 600
        assert "scope" not in claims
        scoped = create(client, json={"scopes": ["reports:read"], "name": "nightly"})
        claims = decode(app, scoped).claims
        assert claims["scope"] == "reports:read"
        assert record(app, claims["jti"]).name == "nightly"
        assert client.get("/reports", headers=bearer(scoped)).status_code == 200
        refused = client.get("/reports", headers=bearer(create(client)))
        assert (refused.status_code, refused.json["error"]) == (403, "insufficient_scope")
        bad = client.post("/api/user-token", headers=basic(), json={"scopes": ["admin"]})
        assert (bad.status_code, bad.json["error"]) == (400, "invalid_scope")


@pytest.mark.parametrize("login, password", [("alice", "wrong"), ("nobody", PASSWORD), ("nobody@example.com", "x")])
def test_create_wrong_user_or_password_is_the_same_401(app: Flask, client: Any, user: Any,
                                                       login: str, password: str) -> None:
    response = client.post("/api/user-token", headers=basic(login, password))
    assert_basic_401(response, "invalid_credentials")
    assert response.json["message"] == "The account name or password is wrong."
    assert token_rows(app) == []


def test_create_refuses_an_inactive_user(app: Flask, client: Any, user: Any) -> None:
    user.active = False
    db.session.commit()
    assert_basic_401(client.post("/api/user-token", headers=basic()), "invalid_credentials")
    assert token_rows(app) == []


HOSTILE_HEADERS = {
    "none": None,
    "empty basic": "Basic",
    "not base64": "Basic !!!not-base64***",
    "no colon": "Basic " + base64.b64encode(b"alice").decode(),
    "empty password": "Basic " + base64.b64encode(b"alice:").decode(),
    "huge": "Basic " + base64.b64encode(b"alice:" + b"p" * 100_000).decode(),
    "huge login": "Basic " + base64.b64encode(b"a" * 3000 + b":" + PASSWORD.encode()).decode(),
    "not utf-8": "Basic " + base64.b64encode(b"\xff\xfe\xfd:\xc3\x28").decode(),
    "nul in login": "Basic " + base64.b64encode(b"ali\x00ce:pw-correct").decode(),
    "latin-1 header": "Basic YWxpY2U6cHc-Y29ycmVjdA\u00e9\u00ff",
    "another scheme": "Digest username=alice",
    "token scheme": "token apt_abc",
}


@pytest.mark.parametrize("header", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_hostile_basic_headers_are_401_never_500(app: Flask, client: Any, user: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    assert_basic_401(client.post("/api/user-token", headers=headers))
    assert_basic_401(client.get("/api/user-token", query_string={"token": "x.y.z"}, headers=headers))
    assert token_rows(app) == []


def test_switched_off_routes_are_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(APITOKENS_USER_TOKEN=False)
    with app.app_context():
        make_user("alice")
        client = app.test_client()
        assert client.post("/api/user-token", headers=basic()).status_code == 404
        assert client.get("/api/user-token?token=a.b.c", headers=basic()).status_code == 404
        assert token_rows(app) == []


# -- GET /api/user-token --------------------------------------------------------------
@pytest.mark.parametrize("parameter", ["token", "user-token"])
def test_info_describes_ones_own_token(app: Flask, client: Any, user: Any, parameter: str) -> None:
    token = create(client)
    response = client.get("/api/user-token", query_string={parameter: token}, headers=basic("alice@example.com"))
    assert response.status_code == 200
    expires_at = record(app, decode(app, token).claims["jti"]).expires_at
    assert response.json == {
        "email": "alice@example.com",
        "expire_time": expires_at.strftime("%Y-%m-%d %H:%M:%S"),
        "organization_name": "Acme",
        "user": "alice",
    }
    assert dt.datetime.strptime(response.json["expire_time"], "%Y-%m-%d %H:%M:%S") > dt.datetime.now(
        dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=23, minutes=59)


def test_info_needs_the_token_parameter(app: Flask, client: Any, user: Any) -> None:
    for query in ("", "?token=", "?other=1"):
        response = client.get("/api/user-token" + query, headers=basic())
        assert (response.status_code, response.json["error"]) == (400, "missing_parameter")


def test_info_needs_good_basic_credentials(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    assert_basic_401(client.get("/api/user-token", query_string={"token": token}), "unauthorized")
    assert_basic_401(client.get("/api/user-token", query_string={"token": token}, headers=basic("alice", "nope")),
                     "invalid_credentials")
    assert_basic_401(client.get("/api/user-token", query_string={"token": token}, headers=bearer(token)),
                     "unauthorized")


def test_info_refuses_someone_elses_token(app: Flask, client: Any, user: Any, other_user: Any) -> None:
    token = create(client, "bob")
    response = client.get("/api/user-token", query_string={"token": token}, headers=basic())
    assert (response.status_code, response.json["error"]) == (403, "token_not_yours")
    assert "alice" not in response.text and "bob" not in response.text


def malformed_tokens(app: Flask, token: str) -> dict[str, str]:
    header, payload, signature = token.split(".")
    claims = decode(app, token).claims
    none_header = b64url_json({"alg": "none", "typ": "JWT"})
    rsa = RSAKey.generate_key(2048)
    return {
        "garbage": "not a jwt",
        "three dots of nothing": "a.b.c",
        "empty parts": "..",
        "non-ascii": "é.é.é",
        "too long": token + "A" * 5000,
        "tampered payload": f"{header}.{b64url_json({**claims, 'user': 'bob'})}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-2]}AA",
        "another key": jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(OTHER_KEY)),
        "alg none": f"{none_header}.{payload}.",
        "alg none with signature": f"{none_header}.{payload}.{signature}",
        "HS512 with our key": jwt.encode({"alg": "HS512"}, claims, signing_key(app), algorithms=["HS512"]),
        "RS256": jwt.encode({"alg": "RS256"}, claims, rsa, algorithms=["RS256"]),
        "RS256 header, HMAC signature": f"{b64url_json({'alg': 'RS256', 'typ': 'JWT'})}.{payload}.{signature}",
        "no jti": resign(app, token, jti=None),
        "jti not text": resign(app, token, jti=12),
        "exp not a number": resign(app, token, exp="tomorrow"),
        "exp beyond any date": resign(app, token, exp=10**20),
        "payload not an object": f"{header}.{b64url(b'[1,2]')}.{signature}",
    }


def test_info_and_bearer_refuse_malformed_and_foreign_jwts(make_app: Callable[..., Flask]) -> None:
    # More Basic logins for one account than the default per-account rate limit allows.
    app = make_app(APITOKENS_ACCOUNT_RATE_LIMIT="100/minute")
    with app.app_context():
        make_user("alice", organization="Acme")
        client = app.test_client()
        token = create(client)
        for label, bad in malformed_tokens(app, token).items():
            info = client.get("/api/user-token", query_string={"token": bad}, headers=basic())
            assert (info.status_code, info.json["error"]) == (400, "malformed_token"), label
            used = client.get("/plain", headers=bearer(bad))
            assert (used.status_code, used.json["error"]) == (401, "invalid_token"), label
            assert "Bearer" in used.headers["WWW-Authenticate"], label
        assert client.get("/plain", headers=bearer(token)).status_code == 200


def test_info_and_bearer_refuse_an_expired_token(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    claims = decode(app, token).claims
    old = resign(app, token, iat=claims["iat"] - 2 * 86400, exp=claims["exp"] - 2 * 86400)
    # The signed exp alone makes it expired, whatever the record says...
    response = client.get("/api/user-token", query_string={"token": old}, headers=basic())
    assert (response.status_code, response.json["error"]) == (400, "token_expired")
    assert client.get("/plain", headers=bearer(old)).status_code == 401
    # ...and the record alone too (the service checks it on every request).
    row = record(app, claims["jti"])
    row.expires_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    db.session.commit()
    assert client.get("/plain", headers=bearer(token)).status_code == 401


def test_bearer_jwt_works_on_protected_views_and_me(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    jti = decode(app, token).claims["jti"]
    plain = client.get("/plain", headers=bearer(token))
    assert (plain.status_code, plain.json) == (200, {"token": jti, "kind": "user-token"})
    either = client.get("/either", headers={"Authorization": f"bEaReR {token}"})
    assert either.json == {"user": "alice", "token": jti}
    me = client.get("/api/me", headers=bearer(token)).json
    assert (me["username"], me["token"]["id"], me["token"]["kind"]) == ("alice", jti, "user-token")
    assert record(app, jti).last_used_at is not None


def test_jwt_is_only_a_bearer_credential(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    for scheme in ("token", "key"):
        response = client.get("/plain", headers=auth(token, scheme))
        assert (response.status_code, response.json["error"]) == (401, "invalid_token"), scheme
    assert client.get("/keys-only", headers=bearer(token)).status_code == 401


def test_jwt_naming_a_record_of_another_kind_is_refused(app: Flask, client: Any, user: Any, issue: Any) -> None:
    token = create(client)
    plain_token = issue(user)
    other_id = next(row.id for row in token_rows(app) if row.kind == "token")
    forged = resign(app, token, jti=other_id)
    assert client.get("/plain", headers=bearer(forged)).status_code == 401
    assert client.get("/plain", headers=auth(plain_token)).status_code == 200
    unknown = resign(app, token, jti="A" * 12)
    assert client.get("/plain", headers=bearer(unknown)).status_code == 401
    response = client.get("/api/user-token", query_string={"token": unknown}, headers=basic())
    assert (response.status_code, response.json["error"]) == (400, "token_revoked")  # signed by us, record gone


@pytest.mark.parametrize("revoker", ["session", "tokens-scoped token"])
def test_revocation_is_honoured_at_once(app: Flask, client: Any, user: Any, issue: Any, revoker: str) -> None:
    token = create(client)
    jti = decode(app, token).claims["jti"]
    assert client.get("/plain", headers=bearer(token)).status_code == 200
    if revoker == "session":
        client.post("/login", data={"username": "alice"})
        headers: dict[str, str] = {}
    else:
        headers = auth(issue(user, scopes=["tokens"]))
    response = client.delete(f"/api/tokens/{jti}", headers=headers)
    assert (response.status_code, response.json) == (200, {"revoked": [jti]})
    assert record(app, jti).revoked_at is not None
    refused = client.get("/plain", headers=bearer(token))
    assert (refused.status_code, refused.json["error"]) == (401, "invalid_token")
    info = client.get("/api/user-token", query_string={"token": token}, headers=basic())
    assert (info.status_code, info.json["error"]) == (400, "token_revoked")


def test_revoking_another_users_jwt_is_404(app: Flask, client: Any, user: Any, other_user: Any) -> None:
    token = create(client, "bob")
    jti = decode(app, token).claims["jti"]
    client.post("/login", data={"username": "alice"})
    assert client.delete(f"/api/tokens/{jti}").status_code == 404
    assert client.get("/plain", headers=bearer(token)).status_code == 200


def test_deactivated_user_is_refused(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    user.active = False
    db.session.commit()
    assert client.get("/plain", headers=bearer(token)).status_code == 401


def test_key_rotation_fallbacks_verify_and_the_current_key_signs(make_app: Callable[..., Flask]) -> None:
    old_key, new_key = "the old user-token key!!", "the new user-token key!!"
    old_app = make_app(APITOKENS_USER_TOKEN_KEY=old_key)
    with old_app.app_context():
        make_user("alice")
        old_token = create(old_app.test_client())
    rotated = make_app(APITOKENS_USER_TOKEN_KEY=new_key, APITOKENS_USER_TOKEN_KEY_FALLBACKS=[old_key])
    with rotated.app_context():
        client = rotated.test_client()
        assert client.get("/plain", headers=bearer(old_token)).status_code == 200
        assert client.get("/api/user-token", query_string={"token": old_token}, headers=basic()).status_code == 200
        new_token = create(client)
        jwt.decode(new_token, OctKey.import_key(new_key.encode()), algorithms=["HS256"])
        with pytest.raises(Exception, match="signature"):
            jwt.decode(new_token, OctKey.import_key(old_key.encode()), algorithms=["HS256"])
    dropped = make_app(APITOKENS_USER_TOKEN_KEY=new_key)
    with dropped.app_context():
        client = dropped.test_client()
        assert client.get("/plain", headers=bearer(old_token)).status_code == 401
        assert client.get("/plain", headers=bearer(new_token)).status_code == 200


def test_secret_key_fallbacks_are_followed(make_app: Callable[..., Flask]) -> None:
    old_app = make_app(SECRET_KEY="the old secret key, long")
    with old_app.app_context():
        make_user("alice")
        token = create(old_app.test_client())
    app = make_app(SECRET_KEY="the new secret key, long", SECRET_KEY_FALLBACKS=["the old secret key, long"])
    with app.app_context():
        assert app.test_client().get("/plain", headers=bearer(token)).status_code == 200


def test_bearer_check_is_one_sql_statement_and_a_forged_jwt_none(app: Flask, client: Any, user: Any) -> None:
    token = create(client)
    forged = jwt.encode({"alg": "HS256"}, decode(app, token).claims, OctKey.import_key(OTHER_KEY))
    assert client.get("/plain", headers=bearer(token)).status_code == 200  # writes last-used once
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get("/plain", headers=bearer(token)).status_code == 200
        assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
        statements.clear()
        assert client.get("/plain", headers=bearer(forged)).status_code == 401
        assert statements == []
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
