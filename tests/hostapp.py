"""A host application as SPEC.md's example writes one, for the tests.

Its models are the tests' own (the tests never import the demo's)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import generate_password_hash

from flask_apitokens import APITokens, current_token, key_required, login_or_token_required, token_required

# Cheap hashes keep the suite fast; the timing tests make their own.
FAST_HASH = "pbkdf2:sha256:1000"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
apitokens = APITokens()


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    organization: Mapped[str | None] = mapped_column(sa.String(120))
    # No is_active of its own, as the README shows: UserMixin's says True for
    # everyone, and the extension must read the active column (issue 14, finding 6).


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def make_user(username: str, password: str | None = "pw-" + "correct", **fields: Any) -> User:
    user = User(username=username, email=fields.pop("email", f"{username}@example.com"),
                password_hash=generate_password_hash(password, method=FAST_HASH) if password else None, **fields)
    db.session.add(user)
    db.session.commit()
    return user


def create_app(database_url: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test secret key, long enough",
        SQLALCHEMY_DATABASE_URI=database_url,
        TESTING=True,
        APITOKENS_SCOPES={"reports:read": "Read reports.", "reports:write": "Write reports."},
        # The tests' host switches on every way of issuing that is off by default
        # (tests/test_defaults.py checks a host that leaves them off).
        APITOKENS_PASSWORD_EXCHANGE=True,
        APITOKENS_USER_TOKEN=True,
        APITOKENS_OAUTH2_SERVER=True,
        APITOKENS_PASSWORD_HASH_METHOD=FAST_HASH,  # the method make_user hashes with
    )
    app.config.update(config)
    db.init_app(app)
    login_manager.init_app(app)
    apitokens.init_app(app, db=db, user_model=User)

    @app.post("/login")
    def login() -> Any:
        user = db.session.execute(sa.select(User).filter_by(username=request.form["username"])).scalar()
        if user is None:
            return jsonify(error="no such user"), 401
        login_user(user)
        return jsonify(ok=True)

    @app.get("/reports")
    @token_required(scopes=["reports:read"])
    def reports() -> Any:
        return jsonify(reports=[1, 2, 3], user=current_user.username, token=current_token.id)

    @app.get("/plain")
    @token_required
    def plain() -> Any:
        return jsonify(token=current_token.id, kind=current_token.kind)

    @app.get("/either")
    @login_or_token_required
    def either() -> Any:
        return jsonify(user=current_user.username, token=current_token.id if current_token else None)

    @app.get("/keys-only")
    @key_required
    def keys_only() -> Any:
        return jsonify(key=current_token.id)

    @app.get("/flask-login")
    @login_required
    def flask_login_view() -> Any:
        return jsonify(user=current_user.username)

    return app
