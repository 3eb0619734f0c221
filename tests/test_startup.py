"""Mistakes in setting the extension up fail at start, naming what is wrong
(issue 15, item 4): an undeclared scope in a decorator, a user model the
extension cannot use, a decorator on an app without init_app, a weak key."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_apitokens import APITokens, token_required
from tests import hostapp
from tests.helpers import auth

KEY = "a secret key of the tests, long enough"


def fresh_db() -> SQLAlchemy:
    class Base(DeclarativeBase):
        pass

    return SQLAlchemy(model_class=Base)


def bare_app(tmp_path: Any, **config: Any) -> Flask:
    app = Flask("host")
    app.config.update(SECRET_KEY=KEY, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/host.db", **config)
    return app


# -- keys: one rule, given or derived ---------------------------------------------------
@pytest.mark.parametrize("secret_key", ["dev", "change me", "", None])
def test_a_weak_secret_key_is_refused_at_init_app(tmp_path: Any, secret_key: Any) -> None:
    app = hostapp.create_app(f"sqlite:///{tmp_path}/x.db")  # a strong key: accepted
    assert app.extensions["apitokens"].settings.pepper
    with pytest.raises(RuntimeError) as raised:
        hostapp.create_app(f"sqlite:///{tmp_path}/y.db", SECRET_KEY=secret_key)
    message = str(raised.value)
    assert message.startswith("APITOKENS_PEPPER") if not secret_key else message.startswith("SECRET_KEY")
    if secret_key:
        assert "at least 16 characters" in message and "APITOKENS_PEPPER is derived" in message


def test_a_weak_key_is_refused_given_or_derived(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError, match="^APITOKENS_PEPPER: .*at least 16"):
        hostapp.create_app(f"sqlite:///{tmp_path}/a.db", APITOKENS_PEPPER="short")
    with pytest.raises(RuntimeError, match=r"^SECRET_KEY_FALLBACKS \(which APITOKENS_PEPPER_FALLBACKS"):
        hostapp.create_app(f"sqlite:///{tmp_path}/b.db", SECRET_KEY_FALLBACKS=["dev"])
    # A weak SECRET_KEY with both keys given explicitly: nothing is derived from it.
    app = hostapp.create_app(f"sqlite:///{tmp_path}/c.db", SECRET_KEY="dev", APITOKENS_PEPPER="p" * 16,
                             APITOKENS_USER_TOKEN_KEY="u" * 16)
    assert app.extensions["apitokens"].settings.pepper == b"p" * 16


# -- the user model ------------------------------------------------------------------------
def test_a_user_model_that_is_not_a_mapped_class(tmp_path: Any) -> None:
    db = fresh_db()
    app = bare_app(tmp_path)
    db.init_app(app)
    with pytest.raises(RuntimeError, match="user_model=dict is not a mapped SQLAlchemy model"):
        APITokens(app, db=db, user_model=dict)
    assert "apitokens" not in app.extensions


def test_a_user_model_whose_passwords_cannot_be_checked(tmp_path: Any) -> None:
    db = fresh_db()

    class Account(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        username: Mapped[str] = mapped_column(sa.String(80))
        hashed_password: Mapped[str] = mapped_column(sa.String(200))

    app = bare_app(tmp_path)
    db.init_app(app)
    with pytest.raises(RuntimeError) as raised:
        APITokens(app, db=db, user_model=Account)
    message = str(raised.value)
    assert "user_model=Account has no password_hash or password column" in message
    assert "(it has hashed_password)" in message and "check_password" in message
    assert "APITOKENS_USERPASS" in message

    # No password route on (a directory-only host): the same model is fine.
    app = bare_app(tmp_path, APITOKENS_USERPASS=False)
    db.init_app(app)
    APITokens(app, db=db, user_model=Account)
    assert app.extensions["apitokens"].users.model is Account


def test_a_check_password_method_is_enough(tmp_path: Any) -> None:
    db = fresh_db()

    class Member(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(sa.String(80))
        hashed_password: Mapped[str] = mapped_column(sa.String(200))

        def check_password(self, password: str) -> bool:
            return password == "right"

    app = bare_app(tmp_path)
    db.init_app(app)
    APITokens(app, db=db, user_model=Member)
    assert "apitokens" in app.extensions


# -- a decorator without init_app ------------------------------------------------------------
def test_a_decorator_on_an_app_without_init_app() -> None:
    app = Flask("forgot")
    app.testing = True  # the error propagates to the test instead of a logged 500

    @app.get("/data")
    @token_required
    def data() -> Any:
        return jsonify(ok=True)

    for headers in (auth("apt_x"), {}):
        with pytest.raises(RuntimeError, match=r"not set up on the application 'forgot': call APITokens.init_app"):
            app.test_client().get("/data", headers=headers)


# -- scopes a decorator asks for -------------------------------------------------------------
def test_an_undeclared_scope_fails_on_the_first_request(tmp_path: Any) -> None:
    app = hostapp.create_app(f"sqlite:///{tmp_path}/s.db")

    @app.get("/misspelled")
    @token_required(scopes=["reprots:read"])
    def misspelled() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    for _ in range(2):  # every request, until it is mended: not a 403 forever
        with pytest.raises(RuntimeError) as raised:
            client.get("/openapi-does-not-matter")
        message = str(raised.value)
        assert "'misspelled' asks for the scope(s) reprots:read" in message
        assert "APITOKENS_SCOPES does not declare" in message and "reports:read" in message


def test_declared_and_built_in_scopes_pass(tmp_path: Any) -> None:
    app = hostapp.create_app(f"sqlite:///{tmp_path}/t.db", RATELIMIT_ENABLED=False)

    @app.get("/manage")
    @token_required(scopes="tokens reports:write")
    def manage() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        hostapp.db.create_all()
        token = app.extensions["apitokens"].service.issue(
            hostapp.make_user("alice"), via="cli", scopes=["tokens", "reports:write"]).token
        client = app.test_client()
        response = client.get("/manage", headers=auth(token))
        assert response.status_code == 200 and response.get_json() == {"ok": True}
        # The check took itself off once it passed.
        assert all("check" != hook.__name__ for hook in app.before_request_funcs[None])
        assert client.get("/reports", headers=auth(token)).status_code == 403
        hostapp.db.session.remove()
        hostapp.db.drop_all()
        hostapp.db.engine.dispose()


def test_a_second_init_app_raises_before_changing_anything(make_app: Any) -> None:
    app = make_app()
    state = app.extensions["apitokens"]
    with pytest.raises(RuntimeError, match="init_app was already called"):
        APITokens().init_app(app, db=hostapp.db, user_model=hostapp.User)
    assert app.extensions["apitokens"] is state
