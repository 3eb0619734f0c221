"""TokenService on its own: a plain SQLAlchemy engine and session, its models on
a plain ``DeclarativeBase`` and a plain user model. No Flask app, no app
context, no Flask-SQLAlchemy. On SQLite and, with APITOKENS_TEST_DATABASE_URL,
on PostgreSQL (the ``database_url`` fixture of conftest.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import flask
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker

from flask_apitokens import crypto, errors, signals
from flask_apitokens.config import load_settings
from flask_apitokens.models import build_models, utcnow
from flask_apitokens.service import KEY, TOKEN, IssuedToken, TokenService
from flask_apitokens.users import SQLAlchemyUserStore


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "unit_people"  # not the host app's "users": both may be in one test database
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(320))
    active: Mapped[bool] = mapped_column(default=True)


#: What build_models and the service use of Flask-SQLAlchemy's ``db``; session and engine are per test.
MODELS = build_models(SimpleNamespace(Model=Base, metadata=Base.metadata), Person)
SETTINGS = load_settings({"SECRET_KEY": "the unit tests' secret key, long enough",
                          "APITOKENS_SCOPES": {"reports:read": "Read reports.", "reports:write": "Write reports."}})


class Sender:
    """What the service sends its signals as (a Flask app, in the extension)."""


class Unit(SimpleNamespace):
    service: TokenService
    session: Any
    sender: Sender
    alice: Person
    bob: Person
    refusals: list[str]


@pytest.fixture
def unit(database_url: str) -> Iterator[Unit]:
    engine = sa.create_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    session = scoped_session(sessionmaker(engine))
    db = SimpleNamespace(Model=Base, metadata=Base.metadata, session=session, engine=engine)
    sender = Sender()
    refusals: list[str] = []

    def on_failure(sender: Any, reason: str, **extra: Any) -> None:
        refusals.append(reason)

    try:
        service = TokenService(sender, db, MODELS, SQLAlchemyUserStore(db, Person), SETTINGS)
        alice, bob = Person(username="alice", email="alice@example.com"), Person(username="bob")
        session.add_all([alice, bob])
        session.commit()
        with signals.authentication_failed.connected_to(on_failure, sender=sender):
            yield Unit(service=service, session=session, sender=sender, alice=alice, bob=bob, refusals=refusals)
    finally:
        session.remove()
        Base.metadata.drop_all(engine)
        engine.dispose()


def refused(unit: Unit, token: str, reason: str, error: type[errors.APITokensError] = errors.InvalidToken) -> None:
    """``token`` is refused with ``error``, and the failure is signalled with ``reason``."""
    before = len(unit.refusals)
    with pytest.raises(error):
        unit.service.authenticate(token, scheme="token")
    assert unit.refusals[before:] == [reason]


def row(unit: Unit, token_id: str) -> Any:
    unit.session.expire_all()
    return unit.session.get(MODELS.Token, token_id)


def set_expires(unit: Unit, token_id: str, moment: dt.datetime) -> None:
    T = MODELS.Token
    unit.session.execute(sa.update(T).where(T.id == token_id).values(expires_at=moment))
    unit.session.commit()


def test_an_issued_token_is_accepted_with_its_scopes_without_any_flask_app(unit: Unit) -> None:
    issued: list[Any] = []
    with signals.token_issued.connected_to(lambda sender, **sent: issued.append(sent), sender=unit.sender):
        made = unit.service.issue(unit.alice, via="cli", name="laptop", scopes=["reports:read"], expires_in=3600)
    assert not flask.has_app_context()
    assert isinstance(made, IssuedToken) and made.token.startswith(SETTINGS["TOKEN_PREFIX"])
    assert [(sent["token"].id, sent["user_id"], sent["via"]) for sent in issued] == [
        (made.info.id, unit.alice.id, "cli")]
    stored = row(unit, made.info.id)
    assert stored.digest is not None and made.token.split(":")[1] not in repr(stored.__dict__)

    info, owner_row = unit.service.check(made.token, scheme="token", ip="192.0.2.1")
    assert (info.id, info.user_id, info.kind, info.name) == (made.info.id, unit.alice.id, TOKEN, "laptop")
    assert info.scopes == {"reports:read"}
    assert info.has_scopes(["reports:read"]) and not info.has_scopes(["reports:write"])
    assert unit.service.owner(info.user_id, owner_row).username == "alice"
    assert row(unit, made.info.id).last_used_ip == "192.0.2.1"
    # Presented as a key, it is not one.
    with pytest.raises(errors.ForeignCredential):
        unit.service.authenticate(made.token, scheme="key")


def test_undeclared_scopes_are_refused_at_issue(unit: Unit) -> None:
    with pytest.raises(errors.InvalidScope):
        unit.service.issue(unit.alice, via="cli", scopes=["reports:delete"])
    assert unit.service.list(unit.alice.id, include_inactive=True) == []


def test_a_wrong_secret_is_refused(unit: Unit) -> None:
    made = unit.service.issue(unit.alice, via="cli")
    forged = crypto.format_token(SETTINGS["TOKEN_PREFIX"], made.info.id, crypto.random_string(crypto.SECRET_LENGTH))
    refused(unit, forged, "unknown")
    unknown = crypto.generate(SETTINGS["TOKEN_PREFIX"])[0]
    refused(unit, unknown, "unknown")
    with pytest.raises(errors.ForeignCredential):  # not one of ours: no failure signalled
        unit.service.authenticate("something else", scheme="token")
    assert unit.refusals == ["unknown", "unknown"]
    assert unit.service.authenticate(made.token, scheme="token").id == made.info.id


def test_an_expired_token_is_refused(unit: Unit) -> None:
    made = unit.service.issue(unit.alice, via="cli", expires_in=3600)
    set_expires(unit, made.info.id, utcnow() - dt.timedelta(seconds=5))
    refused(unit, made.token, "expired")


def test_a_revoked_token_is_refused(unit: Unit) -> None:
    made = unit.service.issue(unit.alice, via="cli")
    revoked: list[Any] = []
    with signals.token_revoked.connected_to(lambda sender, **sent: revoked.append(sent), sender=unit.sender):
        assert unit.service.revoke([made.info.id], user_id=unit.alice.id) == [made.info.id]
    assert revoked == [{"token_ids": [made.info.id], "user_id": unit.alice.id, "reason": "revoked"}]
    refused(unit, made.token, "revoked")
    assert row(unit, made.info.id).revoked_reason == "revoked"


def test_a_deactivated_owners_token_is_refused_and_works_again_when_reactivated(unit: Unit) -> None:
    made = unit.service.issue(unit.alice, via="cli")
    unit.alice.active = False
    unit.session.commit()
    refused(unit, made.token, "inactive_user")
    unit.alice.active = True
    unit.session.commit()
    assert unit.service.authenticate(made.token, scheme="token").id == made.info.id


def test_rotation_makes_a_child_and_rotating_again_revokes_the_family(unit: Unit) -> None:
    parent = unit.service.issue(unit.alice, via="cli", name="ci", scopes=["reports:read"], expires_in=7 * 86400)
    child = unit.service.rotate(parent.info.id, user=unit.alice)
    assert child.info.id != parent.info.id
    assert (child.info.name, child.info.scopes) == ("ci", frozenset({"reports:read"}))
    assert row(unit, parent.info.id).replaced_by == child.info.id
    # The old token works through the grace period; the new one from now on.
    assert unit.service.authenticate(parent.token, scheme="token").id == parent.info.id
    assert unit.service.authenticate(child.token, scheme="token").id == child.info.id

    with pytest.raises(errors.TokenReused):
        unit.service.rotate(parent.info.id, user=unit.alice)
    for token in (parent, child):
        assert row(unit, token.info.id).revoked_reason == "rotation_reuse"
        refused(unit, token.token, "revoked")
    with pytest.raises(errors.NotFound):  # only its owner may rotate it
        unit.service.rotate(unit.service.issue(unit.bob, via="cli").info.id, user=unit.alice)


def test_revoke_all_ends_one_persons_tokens_and_leaves_keys_and_others(unit: Unit) -> None:
    mine = [unit.service.issue(unit.alice, via="cli") for _ in range(3)]
    key = unit.service.issue(unit.alice, via="cli", kind=KEY)
    theirs = unit.service.issue(unit.bob, via="cli")
    revoked = unit.service.revoke_all(unit.alice.id, reason="logout_everywhere")
    assert sorted(revoked) == sorted(made.info.id for made in mine)
    for made in mine:
        refused(unit, made.token, "revoked")
    assert unit.service.authenticate(key.token, scheme="key").id == key.info.id
    assert unit.service.authenticate(theirs.token, scheme="token").id == theirs.info.id
    assert {info.id for info in unit.service.list(unit.alice.id, include_inactive=True)} == {
        made.info.id for made in mine}
    assert unit.service.revoke_all(unit.alice.id) == []


def test_purge_keeps_what_reuse_detection_needs(unit: Unit) -> None:
    old = unit.service.issue(unit.alice, via="cli")
    set_expires(unit, old.info.id, utcnow() - dt.timedelta(days=1))
    parent = unit.service.issue(unit.alice, via="cli", expires_in=7 * 86400)
    child = unit.service.rotate(parent.info.id, user=unit.alice)
    set_expires(unit, parent.info.id, utcnow() - dt.timedelta(seconds=1))  # its grace period is over

    assert unit.service.count_purgeable() == 1
    assert unit.service.purge_expired() == 1
    assert row(unit, old.info.id) is None
    # Kept while the token it was rotated into lives: presenting it again must still be seen as reuse.
    assert row(unit, parent.info.id) is not None
    with pytest.raises(errors.TokenReused):
        unit.service.rotate(parent.info.id, user=unit.alice)
    assert row(unit, child.info.id).revoked_at is not None

    # Once the whole family is dead, nothing is left to detect.
    assert unit.service.purge_expired() == 2
    assert row(unit, parent.info.id) is None and row(unit, child.info.id) is None


def test_find_gives_the_row_only_for_the_right_kind_and_secret(unit: Unit) -> None:
    """What the OAuth2 endpoints find presented tokens with."""
    made = unit.service.issue(unit.alice, via="cli")
    key = unit.service.issue(unit.alice, via="cli", kind=KEY)
    forged = crypto.format_token(SETTINGS["TOKEN_PREFIX"], made.info.id, crypto.random_string(crypto.SECRET_LENGTH))
    assert unit.service.find(made.token, (TOKEN,)).id == made.info.id
    assert unit.service.find(key.token, (TOKEN, KEY)).id == key.info.id
    assert unit.service.find(key.token, (TOKEN,)) is None  # another kind's prefix
    assert unit.service.find(forged, (TOKEN,)) is None  # the right id, a wrong secret
    assert unit.service.find(crypto.generate(SETTINGS["TOKEN_PREFIX"])[0], (TOKEN,)) is None  # unknown
    for junk in ("", "not a token", None, 42):
        assert unit.service.find(junk, (TOKEN,)) is None
