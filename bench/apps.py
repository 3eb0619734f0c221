"""The contenders: one small Flask app per way of checking a token, each with a
protected ``GET`` that answers ``{"ok": true}``, and the credentials to call it
with (one accepted, one or two refused).

Every app is built here so the run script only measures; nothing in this module
is imported by the extension or its tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_login import LoginManager, current_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import generate_password_hash

from flask_apitokens import APITokens, crypto, token_required
from flask_apitokens.models import utcnow

FAST_HASH = "pbkdf2:sha256:1000"


@dataclass
class Call:
    """One contender: an app, a path, request headers and the status it must answer."""

    name: str
    app: Any
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    group: str = ""
    #: sqlite3 connections it uses outside SQLAlchemy (its statements are counted through a trace callback).
    raw_connections: list[Any] = field(default_factory=list)


def ok() -> Any:
    return jsonify(ok=True)


# -- the floor: a bare route, and Flask-HTTPAuth with a dict ----------------------------
def bare_app() -> list[Call]:
    app = Flask("bare")
    app.get("/r")(ok)
    return [Call("bare", app, "/r")]


def httpauth_dict_app() -> list[Call]:
    from flask_httpauth import HTTPTokenAuth

    app = Flask("httpauth_dict")
    auth = HTTPTokenAuth(scheme="Token")
    good = secrets.token_urlsafe(32)
    tokens = {good: "alice"}

    @auth.verify_token
    def verify(token: str) -> str | None:
        return tokens.get(token)

    app.get("/r")(auth.login_required(ok))
    return [
        Call("httpauth-dict", app, "/r", {"Authorization": f"Token {good}"}),
        Call("httpauth-dict refused", app, "/r", {"Authorization": "Token nope"}, 401),
    ]


# -- a careful hand-written check: Flask-HTTPAuth + Flask-SQLAlchemy ORM ------------------
def own_db() -> Any:
    """A Flask-SQLAlchemy instance with its own declarative base (its own tables)."""

    class Base(DeclarativeBase):
        pass

    return SQLAlchemy(model_class=Base)


def handwritten_app(url: str, label: str) -> list[Call]:
    """Row by primary key (one SQL statement: the user's active flag joined in),
    hmac.compare_digest on a SHA-256 of the secret, expiry and revocation checked."""
    from flask_httpauth import HTTPTokenAuth

    db = own_db()

    class HwUser(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "hw_users"
        id: Mapped[int] = mapped_column(primary_key=True)
        username: Mapped[str] = mapped_column(sa.String(80))
        active: Mapped[bool] = mapped_column(default=True)

    class HwToken(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "hw_tokens"
        id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
        user_id: Mapped[int] = mapped_column(sa.ForeignKey("hw_users.id"))
        digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
        expires_at: Mapped[dt.datetime | None]
        revoked_at: Mapped[dt.datetime | None]
        user: Mapped[HwUser] = relationship(lazy="joined")

    app = Flask(f"handwritten_{label}")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench")
    db.init_app(app)
    auth = HTTPTokenAuth(scheme="Token")

    @auth.verify_token
    def verify(token: str) -> int | None:
        public_id, _, secret = token.partition(":")
        if not public_id or not secret:
            return None
        row = db.session.get(HwToken, public_id)
        if row is None:
            return None
        if not hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), row.digest):
            return None
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= utcnow()):
            return None
        if not row.user.active:
            return None
        return row.user_id

    app.get("/r")(auth.login_required(ok))
    with app.app_context():
        db.drop_all()
        db.create_all()
        user = HwUser(username="alice")
        db.session.add(user)
        db.session.flush()
        public_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        db.session.add(HwToken(id=public_id, user_id=user.id, digest=hashlib.sha256(secret.encode()).digest(),
                               expires_at=utcnow() + dt.timedelta(days=30)))
        db.session.commit()
    return [
        Call(f"handwritten {label}", app, "/r", {"Authorization": f"Token {public_id}:{secret}"}, group=label),
        Call(f"handwritten {label} refused", app, "/r", {"Authorization": f"Token {public_id}:wrong"}, 401, label),
    ]


# -- Flask-JWT-Extended (HS256, no database) -----------------------------------------------
def jwt_extended_app() -> list[Call]:
    from flask_jwt_extended import JWTManager, create_access_token, jwt_required

    app = Flask("jwt_extended")
    app.config.update(JWT_SECRET_KEY=secrets.token_hex(32), JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(hours=1))
    jwt = JWTManager(app)
    # The default answer to a bad signature is 422; an API answers 401.
    jwt.invalid_token_loader(lambda reason: (jsonify(error=reason), 401))
    app.get("/r")(jwt_required()(ok))
    with app.app_context():
        good = create_access_token(identity="alice")
    other = Flask("jwt_other")
    other.config["JWT_SECRET_KEY"] = secrets.token_hex(32)
    JWTManager(other)
    with other.app_context():
        forged = create_access_token(identity="alice")
    return [
        Call("jwt-extended", app, "/r", {"Authorization": f"Bearer {good}"}),
        Call("jwt-extended refused", app, "/r", {"Authorization": f"Bearer {forged}"}, 401),
    ]


def jwt_blocklist_app(url: str, label: str) -> list[Call]:
    """Flask-JWT-Extended with the revocation check its documentation shows
    (``token_in_blocklist_loader`` looking the ``jti`` up in a blocklist table
    with Flask-SQLAlchemy): what a JWT that can be revoked at once costs there."""
    from flask_jwt_extended import JWTManager, create_access_token, decode_token, jwt_required

    db = own_db()

    class TokenBlocklist(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "jwt_blocklist"
        id: Mapped[int] = mapped_column(primary_key=True)
        jti: Mapped[str] = mapped_column(sa.String(36), index=True)
        created_at: Mapped[dt.datetime]

    app = Flask(f"jwt_blocklist_{label}")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, JWT_SECRET_KEY=secrets.token_hex(32),
                      JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(hours=1))
    db.init_app(app)
    jwt = JWTManager(app)
    jwt.invalid_token_loader(lambda reason: (jsonify(error=reason), 401))
    jwt.revoked_token_loader(lambda header, payload: (jsonify(error="revoked"), 401))

    @jwt.token_in_blocklist_loader
    def revoked(header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return db.session.execute(sa.select(TokenBlocklist.id).filter_by(jti=payload["jti"])).first() is not None

    app.get("/r")(jwt_required()(ok))
    with app.app_context():
        db.drop_all()
        db.create_all()
        good = create_access_token(identity="alice")
        gone = create_access_token(identity="alice")
        db.session.add(TokenBlocklist(jti=decode_token(gone)["jti"], created_at=utcnow()))
        db.session.commit()
    return [
        Call(f"jwt-extended +blocklist {label}", app, "/r", {"Authorization": f"Bearer {good}"}, group=label),
        Call(f"jwt-extended +blocklist {label} revoked", app, "/r", {"Authorization": f"Bearer {gone}"}, 401,
             group=label),
    ]


def jwt_user_app(url: str, label: str) -> list[Call]:
    """Flask-JWT-Extended with the user loaded as its documentation shows
    (``user_lookup_loader`` reading the user through Flask-SQLAlchemy), and a
    view that reads ``current_user``: what most real views pay."""
    from flask_jwt_extended import JWTManager, create_access_token, jwt_required
    from flask_jwt_extended import current_user as jwt_user

    db = own_db()

    class JwtUser(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "jwt_users"
        id: Mapped[int] = mapped_column(primary_key=True)
        username: Mapped[str] = mapped_column(sa.String(80), unique=True)
        email: Mapped[str | None] = mapped_column(sa.String(320))
        active: Mapped[bool] = mapped_column(default=True)
        organization: Mapped[str | None] = mapped_column(sa.String(120))

    app = Flask(f"jwt_user_{label}")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, JWT_SECRET_KEY=secrets.token_hex(32),
                      JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(hours=1))
    db.init_app(app)
    jwt = JWTManager(app)
    jwt.invalid_token_loader(lambda reason: (jsonify(error=reason), 401))
    jwt.user_identity_loader(lambda user: str(user.id))

    @jwt.user_lookup_loader
    def load(header: dict[str, Any], payload: dict[str, Any]) -> Any:
        return db.session.execute(sa.select(JwtUser).filter_by(id=int(payload["sub"]))).scalar_one_or_none()

    @app.get("/user")
    @jwt_required()
    def user_view() -> Any:
        return jsonify(user=jwt_user.username)

    with app.app_context():
        db.drop_all()
        db.create_all()
        user = JwtUser(username="alice", email="alice@example.com", organization="Acme")
        db.session.add(user)
        db.session.commit()
        good = create_access_token(identity=user)
    return [Call(f"jwt-extended +user {label}", app, "/user", {"Authorization": f"Bearer {good}"}, group=label)]


# -- Flask-Security-Too token authentication --------------------------------------------------
def flask_security_app(url: str, label: str) -> list[Call]:
    from flask_security import Security, SQLAlchemyUserDatastore, auth_token_required
    from flask_security.models import fsqla_v3 as fsqla

    db = own_db()
    fsqla.FsModels.set_db_info(db)

    class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
        pass

    class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
        pass

    app = Flask(f"flask_security_{label}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url, SECRET_KEY=secrets.token_hex(32), SECURITY_PASSWORD_SALT="bench-salt",
        SECURITY_PASSWORD_HASH="pbkdf2_sha512", SECURITY_TOKEN_MAX_AGE=3600, WTF_CSRF_ENABLED=False,
    )
    db.init_app(app)
    datastore = SQLAlchemyUserDatastore(db, User, Role)
    Security(app, datastore)
    app.get("/r")(auth_token_required(ok))
    with app.app_context():
        db.drop_all()
        db.create_all()
        user = datastore.create_user(email="alice@example.com", password="not used")
        db.session.commit()
        with app.test_request_context():
            good = user.get_auth_token()
    headers = {"Accept": "application/json"}
    return [
        Call(f"flask-security {label}", app, "/r", {**headers, "Authentication-Token": good}, group=label),
        Call(f"flask-security {label} refused", app, "/r", {**headers, "Authentication-Token": good[:-4] + "AAAA"},
             401, label),
    ]


# -- the SPEC.md host application with flask-apitokens -----------------------------------------
# The host's models are the demo's (example_app is the SPEC.md host app).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from example_app.models import User as HostUser  # noqa: E402
from example_app.models import db as host_db  # noqa: E402

apitokens = APITokens()


def host_base(url: str, name: str, **config: Any) -> Flask:
    """The host app before any extension of ours: Flask-SQLAlchemy and
    Flask-Login, and ``/open`` (unprotected)."""
    app = Flask(name)
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench secret key, long enough", **config)
    host_db.init_app(app)
    login_manager = LoginManager()
    login_manager.init_app(app)
    login_manager.user_loader(lambda user_id: host_db.session.get(HostUser, int(user_id)))
    app.get("/open")(ok)
    return app


def host_app(url: str, name: str, **config: Any) -> Flask:
    """The SPEC.md host app: Flask-SQLAlchemy, Flask-Login and flask-apitokens,
    with ``/open`` (unprotected), ``/r`` (token_required) and ``/user`` (token_required,
    reads ``current_user``)."""
    # User-token JWTs are off by default (issue 15); the bench measures them.
    app = host_base(url, name, **{"APITOKENS_USER_TOKEN": True, **config})
    apitokens.init_app(app, db=host_db, user_model=HostUser)
    app.add_url_rule("/r", "protected", token_required(ok))

    @app.get("/user")
    @token_required
    def user_view() -> Any:
        return jsonify(user=current_user.username)

    return app


def host_reset(app: Flask, filler: int = 0) -> HostUser:
    """Fresh tables with alice, and ``filler`` other tokens (bulk Core inserts)."""
    with app.app_context():
        host_db.drop_all()
        host_db.create_all()
        user = HostUser(username="alice", email="alice@example.com", organization="Acme",
                        password_hash=generate_password_hash("pw-correct", method=FAST_HASH))
        host_db.session.add(user)
        host_db.session.commit()
        if filler:
            bulk_tokens(app, user.id, filler)
        return user


def bulk_tokens(app: Flask, user_id: int, count: int, chunk: int = 50_000) -> None:
    table = app.extensions["apitokens"].models.token_table
    now = utcnow()
    digest = bytes(32)
    with host_db.engine.begin() as conn:
        for start in range(0, count, chunk):
            rows = [{"id": secrets.token_hex(6), "user_id": user_id, "kind": "token", "via": "cli", "name": "",
                     "scopes": "", "digest": digest, "created_at": now}
                    for _ in range(min(chunk, count - start))]
            conn.execute(table.insert(), rows)


def user_token_available() -> bool:
    try:
        import flask_apitokens.methods.user_token  # noqa: F401
    except ImportError:
        return False
    return True


def host_calls(url: str, label: str, *, user_token: bool) -> list[Call]:
    """Host-open, the extension with a token, a key and a user-token JWT, and refusals."""
    app = host_app(url, f"host_{label}")
    user = host_reset(app)
    calls = [Call(f"host-open {label}", app, "/open", group=label)]
    with app.app_context():
        service = app.extensions["apitokens"].service
        token = service.issue(user, via="cli", name="bench")
        key = service.issue(user, via="cli", kind="key", name="bench key")
    if url.startswith("sqlite:///"):
        floor = add_floor_route(app, url.removeprefix("sqlite:///"), token.token)
        calls.append(Call(f"floor {label}", app, "/floor", {"Authorization": f"token {token.token}"}, group=label,
                          raw_connections=[floor]))
    parts = crypto.parse(token.token, service.prefixes["token"])
    assert parts is not None
    wrong_secret = crypto.format_token(parts.prefix, parts.public_id, crypto.random_string(crypto.SECRET_LENGTH))
    bad_check = token.token[:-1] + ("A" if token.token[-1] != "A" else "B")
    key_parts = crypto.parse(key.token, service.prefixes["key"])
    assert key_parts is not None
    key_wrong = crypto.format_token(key_parts.prefix, key_parts.public_id, crypto.random_string(crypto.SECRET_LENGTH))
    calls += [
        Call(f"ext token {label}", app, "/r", {"Authorization": f"token {token.token}"}, group=label),
        Call(f"ext token {label} +user", app, "/user", {"Authorization": f"token {token.token}"}, group=label),
        Call(f"ext token {label} refused (secret)", app, "/r", {"Authorization": f"token {wrong_secret}"}, 401, label),
        Call(f"ext token {label} refused (checksum)", app, "/r", {"Authorization": f"token {bad_check}"}, 401, label),
        Call(f"ext key {label}", app, "/r", {"Authorization": f"key {key.token}"}, group=label),
        Call(f"ext key {label} refused (secret)", app, "/r", {"Authorization": f"key {key_wrong}"}, 401, label),
    ]
    if user_token:
        import base64

        client = app.test_client()
        basic = base64.b64encode(b"alice:pw-correct").decode()
        answer = client.post("/api/user-token", headers={"Authorization": f"Basic {basic}"})
        assert answer.status_code == 201, answer.get_data(as_text=True)
        jwt_text = answer.get_json()["user-token"]
        head, body, signature = jwt_text.split(".")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        calls += [
            Call(f"ext user-token {label}", app, "/r", {"Authorization": f"Bearer {jwt_text}"}, group=label),
            Call(f"ext user-token {label} refused", app, "/r",
                 {"Authorization": f"Bearer {head}.{body}.{flipped}"}, 401, label),
        ]
    # Last-used throttling off: every accepted request writes.
    every = host_app(url, f"host_{label}_every", APITOKENS_LAST_USED_INTERVAL=0)
    calls.append(Call(f"ext token {label} last-used=0", every, "/r", {"Authorization": f"token {token.token}"},
                      group=label))
    return calls


#: The floor's one statement: the digest of the token's row, by primary key.
FLOOR_SQL = "SELECT digest FROM apitokens_token WHERE id = ?"


def add_floor_route(app: Flask, database_path: str, token: str) -> sqlite3.Connection:
    """``/floor`` on ``app``: a floor for any database-backed check on SQLite,
    with nothing but the work every such check must do (read the header, one
    ``SELECT`` of the row's digest on a kept autocommit connection, a SHA-256
    compared in constant time). Returns the connection, to close."""
    connection = sqlite3.connect(database_path, isolation_level=None, check_same_thread=False)
    expected = hashlib.sha256(token.encode()).digest()

    @app.get("/floor")
    def floor() -> Any:
        presented = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")[2]
        row = connection.execute(FLOOR_SQL, (presented.split(":")[0][-12:],)).fetchone()
        if row is None or not hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), expected):
            return jsonify(ok=False), 401
        return jsonify(ok=True)

    return connection


def plain_host_calls(url: str) -> list[Call]:
    """The host app without flask-apitokens (Flask-SQLAlchemy and Flask-Login
    only): what the extension adds to a route it does not protect is
    host-open's cost over this one."""
    return [Call("host-plain sqlite", host_base(url, "host_plain"), "/open", group="sqlite")]


def wal_calls(url: str) -> list[Call]:
    """The host app on an SQLite file in WAL mode (the host's choice, made on
    the file): host-open and an accepted token."""
    app = host_app(url, "host_wal")
    user = host_reset(app)
    with app.app_context():
        with host_db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar() == "wal"
        token = app.extensions["apitokens"].service.issue(user, via="cli")
    return [Call("host-open sqlite-wal", app, "/open", group="sqlite"),
            Call("ext token sqlite-wal", app, "/r", {"Authorization": f"token {token.token}"}, group="sqlite")]


def table_size_calls(directory: str, sizes: tuple[int, ...]) -> list[Call]:
    """The extension with a token among ``size`` tokens, one SQLite file each."""
    calls = []
    for size in sizes:
        app = host_app(f"sqlite:///{directory}/size_{size}.sqlite3", f"host_size_{size}")
        user = host_reset(app, filler=size - 1)
        with app.app_context():
            token = app.extensions["apitokens"].service.issue(user, via="cli")
        calls.append(Call(f"ext token sqlite {size:,} tokens", app, "/r",
                          {"Authorization": f"token {token.token}"}, group="sqlite"))
    return calls
