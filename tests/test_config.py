"""Settings are read once, validated, and errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_apitokens import APITokens, config
from tests import hostapp


def settings(**values: object) -> config.Settings:
    return config.load_settings({"SECRET_KEY": "a secret key for tests", **values})


def test_every_default_has_a_doc_comment() -> None:
    lines = Path(config.__file__).read_text().splitlines()
    for key in config.DEFAULTS:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f'"{key}":'))
        assert lines[index - 1].strip().startswith("#:"), f"{key} has no #: comment"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("APITOKENS_USERPASS_EXPIRES_IN", -5),
        ("APITOKENS_USERPASS_EXPIRES_IN", "soon"),
        ("APITOKENS_MAX_LIFETIME", True),
        ("APITOKENS_TOKEN_PREFIX", "has space"),
        ("APITOKENS_KEY_PREFIX", "apt_"),
        ("APITOKENS_URL_PREFIX", "api"),
        ("APITOKENS_SCOPES", ["reports"]),
        ("APITOKENS_SCOPES", {"bad scope": "x"}),
        ("APITOKENS_PASSWORD_EXCHANGE", "no"),
        ("APITOKENS_PEPPER", "short"),
        ("APITOKENS_LDAP_TIMEOUT", 0),
        ("APITOKENS_TRUSTED_ORIGINS", "https://a.example"),
        ("APITOKENS_NO_SUCH_SETTING", 1),
    ],
)
def test_bad_values_raise_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(RuntimeError, match=key):
        settings(**{key: value})


def test_keys_need_a_secret_key_or_their_own() -> None:
    with pytest.raises(RuntimeError, match="APITOKENS_PEPPER"):
        config.load_settings({})
    settings = config.load_settings({"APITOKENS_PEPPER": "x" * 32, "APITOKENS_USER_TOKEN_KEY": "y" * 32})
    assert settings.pepper == b"x" * 32


def test_secret_key_fallbacks_become_pepper_fallbacks() -> None:
    loaded = settings(SECRET_KEY_FALLBACKS=["an older secret key"])
    assert loaded.pepper_fallbacks == (config.crypto.derive_key("an older secret key", "pepper"),)


def test_builtin_scopes_are_always_there() -> None:
    assert set(settings(APITOKENS_SCOPES={"a:b": "A."}).scopes) == {"tokens", "login", "a:b"}


def test_second_init_app_raises(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = hostapp.create_app(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(RuntimeError, match="already"):
        hostapp.apitokens.init_app(app, db=hostapp.db, user_model=hostapp.User)


def test_init_app_needs_db_and_user_model() -> None:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a secret key for tests"
    with pytest.raises(RuntimeError, match="db="):
        APITokens().init_app(app)


def test_options_given_to_the_constructor_override_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = Flask(__name__)
    app.config.update(SECRET_KEY="a secret key for tests", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/y.db")
    hostapp.db.init_app(app)
    APITokens(app, db=hostapp.db, user_model=hostapp.User, URL_PREFIX="/v2")
    assert app.extensions["apitokens"].settings["URL_PREFIX"] == "/v2"
    assert any(rule.rule == "/v2/me" for rule in app.url_map.iter_rules())
