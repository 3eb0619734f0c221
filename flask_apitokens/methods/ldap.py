"""``POST /api/authenticate/ldap``: a token for a directory account.

The password is checked by a bind against the directory
(:mod:`flask_apitokens.ldap_directory`, through flask-ldap3-login, configured
with its own ``LDAP_*`` keys). The local user is found through an
``apitokens_identity`` link (provider ``ldap``, subject the entry's stable id,
e.g. OpenLDAP's ``entryUUID``; see :mod:`flask_apitokens.identities`), or
created on the first success, so the link survives changes of the entry's
mail, name or DN.

The route exists only when ``LDAP_HOST`` is configured.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from .. import errors
from .. import openapi as oa
from ..config import BUILTIN_SCOPES
from ..identities import AccountTaken, IdentityLinks, Link, OutsideIdentity
from ..ldap_directory import DirectoryUser, bind, group_scopes, normal_dn, read_entry, setup_manager
from ..ratelimit import rate_limited
from ..state import state
from ..web import (
    MAX_LOGIN_LENGTH,
    MAX_PASSWORD_LENGTH,
    issue_options,
    read_body,
    refused,
    text_field,
    token_response,
)

if TYPE_CHECKING:
    from ..state import State

log = logging.getLogger(__name__)

PROVIDER = "ldap"


# -- scopes and the local user ------------------------------------------------------------------


def token_scopes(requested: list[str], entry: DirectoryUser) -> list[str]:
    """Without a group mapping: what was asked for (any declared scope). With one:
    every scope the user's groups grant when none is asked for, else what was
    asked for, each of which the groups (or a built-in scope: ``tokens``, ``login``) must grant."""
    mapping = state().settings["LDAP_GROUP_SCOPES"]
    if not mapping:
        return requested
    allowed = group_scopes(entry.groups, mapping)
    if not requested:
        return sorted(allowed)
    denied = sorted(set(requested) - allowed - set(BUILTIN_SCOPES))
    if denied:
        raise errors.InsufficientScope(f"Your directory groups do not grant the scope {denied[0]!r}.")
    return requested


def _is_admin(entry: DirectoryUser) -> bool | None:
    admin_groups = state().settings["LDAP_ADMIN_GROUPS"]
    if not admin_groups:
        return None  # not managed by the directory
    return any(normal_dn(dn) in entry.groups for dn in admin_groups)


def _conflict() -> errors.AccountConflict:
    return errors.AccountConflict(
        "A local account already uses this directory account's name or email; an administrator must link them."
    )


def find_or_create_user(entry: DirectoryUser) -> Any:
    """The local user linked to ``entry``, updated from it; made on the first login."""
    st = state()
    users = st.users
    links = IdentityLinks(st.db.session, st.models.Identity, users)
    identity = OutsideIdentity(PROVIDER, entry.subject, entry.email)

    def make_user() -> Any:
        # An existing local account is never taken over by a directory entry of the same name.
        if users.find_by_login(entry.username) is not None or (entry.email and users.find_by_email(entry.email)):
            raise AccountTaken()
        user = users.create_user(username=entry.username, email=entry.email, display_name=entry.display_name)
        admin = _is_admin(entry)
        if admin is not None:
            users.update_user(user, is_admin=admin)
        return user

    link = links.find(identity) or links.link_first(identity, make_user)
    if link is None:
        raise _conflict()
    if link.made:
        return link.user
    return _update_linked_user(link, entry)


def _update_linked_user(link: Link, entry: DirectoryUser) -> Any:
    users = state().users
    user = link.user
    if user is None:
        raise errors.InvalidCredentials()
    changes: dict[str, Any] = {"display_name": entry.display_name}
    if entry.email and entry.email != users.profile(user)["email"]:
        owner = users.find_by_email(entry.email)
        if owner is None or users.user_id(owner) == users.user_id(user):
            changes["email"] = entry.email
            link.row.email = entry.email
        else:
            log.warning("flask-apitokens: LDAP user %s: new email belongs to another account; kept the old one",
                        users.user_id(user))
    admin = _is_admin(entry)
    if admin is not None:
        changes["is_admin"] = admin
    users.update_user(user, **changes)
    return user


# -- the route ------------------------------------------------------------------------------


def _fail(username: str) -> errors.APITokensError:
    return refused("ldap", username, errors.InvalidCredentials())


@rate_limited(account="username")
def authenticate_ldap() -> Response:
    body = read_body()
    # Read by hand: a NUL in a name is a failed login (401), not a malformed field.
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        username = text_field(body, "username", max_length=MAX_LOGIN_LENGTH)
    if not isinstance(password, str) or not password:
        password = text_field(body, "password", max_length=MAX_PASSWORD_LENGTH)
    if len(username) > MAX_LOGIN_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise _fail(username[:MAX_LOGIN_LENGTH])
    options = issue_options(body)  # 400 for an undeclared scope, before the directory is asked
    app = state().app
    result = bind(app, username, password)
    if result is None:
        raise _fail(username)
    entry = read_entry(result, app.config.get("LDAP_USER_LOGIN_ATTR") or "uid")
    options["scopes"] = token_scopes(options["scopes"], entry)
    user = find_or_create_user(entry)
    if not state().users.is_active(user):
        state().db.session.rollback()
        raise _fail(username)
    issued = state().service.issue(user, via="ldap", **options)
    return token_response(issued)


def check_group_settings(state: State) -> None:
    """Group mappings name declared scopes and DNs, or the app does not start."""
    declared = state.settings.scopes
    for dn, scopes in state.settings["LDAP_GROUP_SCOPES"].items():
        if not isinstance(dn, str) or not isinstance(scopes, (list, tuple)) or not all(
                isinstance(scope, str) for scope in scopes):
            raise RuntimeError(f"flask-apitokens: APITOKENS_LDAP_GROUP_SCOPES: expected group DN -> list of scopes, "
                               f"got {dn!r}: {scopes!r}")
        unknown = [scope for scope in scopes if scope not in declared]
        if unknown:
            raise RuntimeError(f"flask-apitokens: APITOKENS_LDAP_GROUP_SCOPES: {dn!r} grants the undeclared "
                               f"scope {unknown[0]!r} (declare it in APITOKENS_SCOPES)")
    if not all(isinstance(dn, str) for dn in state.settings["LDAP_ADMIN_GROUPS"]):
        raise RuntimeError("flask-apitokens: APITOKENS_LDAP_ADMIN_GROUPS: expected a list of group DNs")


def register(blueprint: Blueprint, state: State) -> None:
    """Routed when the host configures flask-ldap3-login's ``LDAP_HOST`` (see ISSUING_METHODS)."""
    app = state.app
    check_group_settings(state)
    settings = state.settings
    setup_manager(app, timeout=float(settings["LDAP_TIMEOUT"]),
                  search_groups=bool(settings["LDAP_GROUP_SCOPES"] or settings["LDAP_ADMIN_GROUPS"]))
    blueprint.add_url_rule("/authenticate/ldap", "ldap", authenticate_ldap, methods=["POST"])


#: The route, for the OpenAPI document (see :mod:`flask_apitokens.openapi`).
OPENAPI = {"/authenticate/ldap": {"post": oa.operation(
    "A token for a directory login (LDAP bind)", tag="issue", security=oa.NO_CREDENTIAL,
    description="Form fields or JSON. A user never seen before is created on the first success.",
    body=oa.password_login_body("username"),
    responses={200: oa.json_response("The new token, shown once", oa.ref("IssuedToken"))},
    errors=(400, 401, 403, 409, 413, 415, 429, 503),
)}}
