"""flask_apitokens.identities on its own: the link made on first sight, the
race a concurrent first login wins, and free user names. The LDAP and provider
routes that use it are tested through HTTP in test_ldap.py and test_providers.py."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_apitokens import errors
from flask_apitokens.identities import AccountTaken, IdentityLinks, OutsideIdentity
from tests.hostapp import db, make_user

ADA = OutsideIdentity("ldap", "0f6b-ada", "ada@example.com")


def links(app: Flask) -> IdentityLinks:
    st = app.extensions["apitokens"]
    return IdentityLinks(db.session, st.models.Identity, st.users)


def link_elsewhere(app: Flask, user: Any, identity: OutsideIdentity) -> None:
    """What a concurrent first login commits on its own connection."""
    table = app.extensions["apitokens"].models.identity_table
    with db.engine.begin() as connection:
        connection.execute(table.insert().values(user_id=user.id, provider=identity.provider,
                                                 subject=identity.subject, email=identity.email,
                                                 created_at=sa.func.now()))


def test_first_sight_links_the_user_it_is_given(app: Flask) -> None:
    ada = make_user("ada")
    made = links(app).link_first(ADA, lambda: ada)
    assert made is not None and made.made and made.user is ada
    db.session.commit()
    found = links(app).find(ADA)
    assert found is not None and not found.made and found.user.id == ada.id
    assert (found.row.provider, found.row.subject, found.row.email) == ("ldap", "0f6b-ada", "ada@example.com")
    assert links(app).find(OutsideIdentity("github", "0f6b-ada", None)) is None


def test_losing_the_race_on_the_link_takes_the_winners_link(app: Flask) -> None:
    winner, loser = make_user("ada"), make_user("ada-2")
    linker = links(app)
    assert linker.find(ADA) is None
    link_elsewhere(app, winner, ADA)  # between the lookup and the insert
    found = linker.link_first(ADA, lambda: loser)  # the unique (provider, subject) refuses the insert
    assert found is not None and not found.made and found.user.id == winner.id


@pytest.mark.parametrize("linked", [True, False])
def test_an_account_taken_is_a_conflict_unless_the_same_identity_took_it(app: Flask, linked: bool) -> None:
    ada = make_user("ada")
    if linked:
        link_elsewhere(app, ada, ADA)

    def make_user_refusing() -> Any:
        raise AccountTaken()

    found = links(app).link_first(ADA, make_user_refusing)
    if linked:
        assert found is not None and not found.made and found.user.id == ada.id
    else:
        assert found is None


def test_free_usernames(app: Flask) -> None:
    linker = links(app)
    assert linker.free_username("ada", "github") == "ada"
    make_user("ada")
    assert linker.free_username("ada", "github") == "ada-github"
    make_user("ada-github")
    assert linker.free_username("ada", "github") == "ada-github-2"
    assert linker.free_username("", "github") == "github"
    assert linker.free_username("x" * 100, "github") == "x" * 64
    for n in range(2, 20):
        make_user(f"ada-github-{n}")
    with pytest.raises(errors.AccountConflict, match="No free user name"):
        linker.free_username("ada", "github")
