"""``POST /api/authenticate/ldap``: a token for a directory account.

The password is checked by a bind against the directory through
flask-ldap3-login (configured with its own ``LDAP_*`` keys). The local user is
found through an ``apitokens_identity`` link (provider ``ldap``, subject the
entry's stable id, e.g. OpenLDAP's ``entryUUID``), or created on the first
success, so the link survives changes of the entry's mail, name or DN.

The route exists only when ``LDAP_HOST`` is configured. Every directory call is
bounded by ``APITOKENS_LDAP_TIMEOUT``: flask-ldap3-login's own server pool
waits 10 s per failed cycle and has no receive timeout, so this module puts a
server with a connect timeout in a non-checking pool and gives every connection
a receive timeout.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app

from .. import errors
from .. import openapi as oa
from ..config import BUILTIN_SCOPES
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
    # flask-ldap3-login and ldap3 are the optional "ldap" extra: imported only when LDAP is configured.
    from flask_ldap3_login import AuthenticationResponse, LDAP3LoginManager

    from ..state import State

log = logging.getLogger(__name__)

PROVIDER = "ldap"

#: Attributes that hold an entry's stable id, in order of preference:
#: OpenLDAP, Active Directory, 389 Directory Server / Red Hat DS, FreeIPA.
STABLE_ID_ATTRIBUTES = ("entryUUID", "objectGUID", "nsUniqueId", "ipaUniqueID")
#: What is read of a user entry: never ``userPassword`` (the library's default is every attribute).
USER_ATTRIBUTES = ("uid", "mail", "cn", "displayName", *STABLE_ID_ATTRIBUTES)

#: flask-ldap3-login settings this extension chooses differently from the
#: library's defaults (a host's own values win).
LDAP_DEFAULTS: dict[str, Any] = {
    # The extension builds its own server, with timeouts (see _manager_class).
    "LDAP_ADD_SERVER": False,
    # A direct bind pastes the login name into a DN unescaped; a search escapes it.
    "LDAP_ALWAYS_SEARCH_BIND": True,
    "LDAP_FAIL_AUTH_ON_MULTIPLE_FOUND": True,
    "LDAP_USER_SEARCH_SCOPE": "SUBTREE",
    "LDAP_GET_USER_ATTRIBUTES": list(USER_ATTRIBUTES),
    # OpenLDAP's groups, not Active Directory's "(objectclass=group)".
    "LDAP_GROUP_OBJECT_FILTER": "(objectclass=groupOfNames)",
    "LDAP_GROUP_MEMBERS_ATTR": "member",
    "LDAP_GROUP_SEARCH_SCOPE": "SUBTREE",
    "LDAP_GET_GROUP_ATTRIBUTES": ["cn"],
}


@functools.cache
def _manager_class() -> type[LDAP3LoginManager]:
    from flask_ldap3_login import AuthenticationResponseStatus, LDAP3LoginManager

    class TimedLoginManager(LDAP3LoginManager):  # type: ignore[misc]
        """flask-ldap3-login's manager, with a receive timeout on every connection."""

        #: Whole seconds: ldap3 packs the receive timeout into SO_RCVTIMEO as an integer.
        timeout: int = 5

        def _make_connection(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("receive_timeout", self.timeout)
            return super()._make_connection(*args, **kwargs)

        def authenticate(self, username: str, password: str) -> AuthenticationResponse:
            # ldap3 skips an address that refused a connection for 5 s
            # (RESET_AVAILABILITY_TIMEOUT); ask again on every login instead.
            for server in current_app.ldap3_login_manager_server_pool.servers:  # type: ignore[attr-defined]
                server.reset_availability()
            return super().authenticate(username, password)

        def authenticate_search_bind(self, username: str, password: str) -> AuthenticationResponse:
            response = super().authenticate_search_bind(username, password)
            if response.status != AuthenticationResponseStatus.success and response.exception is None:
                # Nobody by that name (or several): the library answered without
                # the user's bind, one bind faster than a wrong password. Bind as
                # nobody, so an unknown name costs what a wrong password costs.
                self._dummy_bind(password)
            return response

        def _dummy_bind(self, password: str) -> None:
            attr = current_app.config.get("LDAP_USER_LOGIN_ATTR") or "uid"
            dn = f"{attr}=apitokens-nobody-{uuid.uuid4().hex},{self.full_user_search_dn}"
            connection = self._make_connection(bind_user=dn, bind_password=password)
            try:
                connection.bind()
            except Exception:  # noqa: BLE001, S110  (a refusal is the expected answer; the result is already known)
                pass
            finally:
                self.destroy_connection(connection)

        def destroy_connection(self, connection: Any) -> None:
            try:
                super().destroy_connection(connection)
            finally:
                # ldap3 keeps, unclosed, the socket of a connection that never opened.
                leftover = getattr(connection, "socket", None)
                if leftover is not None:
                    leftover.close()

    return TimedLoginManager


def setup_manager(app: Flask, *, timeout: float, search_groups: bool) -> LDAP3LoginManager:
    """Set up flask-ldap3-login on ``app`` (or reuse the host's manager as it is).
    Groups are searched when ``search_groups`` (a group mapping is configured)."""
    try:
        import ldap3
    except ImportError:
        raise RuntimeError("flask-apitokens: LDAP_HOST is set but flask-ldap3-login is not installed "
                           "(pip install 'flask-apitokens[ldap]')") from None
    existing = getattr(app, "ldap3_login_manager", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    for key, value in LDAP_DEFAULTS.items():
        app.config.setdefault(key, value)
    app.config.setdefault("LDAP_SEARCH_FOR_GROUPS", search_groups)

    manager = _manager_class()()
    manager.timeout = max(1, math.ceil(timeout))
    manager.init_app(app)
    server = ldap3.Server(
        app.config["LDAP_HOST"], port=int(app.config["LDAP_PORT"]), use_ssl=bool(app.config["LDAP_USE_SSL"]),
        connect_timeout=timeout, get_info=ldap3.NONE,
    )
    # The manager's pool checks servers and sleeps 10 s after a failed round;
    # a plain pool tries the server once and fails within connect_timeout.
    pool = ldap3.ServerPool([server], ldap3.FIRST, active=False, exhaust=False)
    app.ldap3_login_manager_server_pool = pool  # type: ignore[attr-defined]
    return manager


# -- reading the directory's answer -------------------------------------------------


def _first(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return values[0] if values else None
    return values


def stable_id(info: dict[str, Any]) -> str | None:
    """The entry's stable id as text (AD's binary GUID as a UUID)."""
    for name in STABLE_ID_ATTRIBUTES:
        value = _first(info.get(name))
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes_le=value))
        if value:
            return str(value).lower()
    return None


def normal_dn(dn: str) -> str:
    """A DN in one spelling (lower case, no spaces around separators), to compare group DNs."""
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.dn import parse_dn

    try:
        return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _ in parse_dn(dn, escape=True, strip=True))
    except (LDAPException, ValueError):
        return dn.strip().lower()


@dataclass(frozen=True)
class DirectoryUser:
    subject: str
    username: str
    email: str | None
    display_name: str | None
    groups: frozenset[str]  # normalised DNs


def read_entry(result: AuthenticationResponse, login_attr: str) -> DirectoryUser:
    info = result.user_info or {}
    subject = stable_id(info)
    if subject is None:
        log.warning("flask-apitokens: LDAP entry has none of %s; cannot link it", ", ".join(STABLE_ID_ATTRIBUTES))
        raise errors.LDAPUnavailable("The directory entry has no stable id; ask an administrator.")
    username = _first(info.get("uid")) or _first(info.get(login_attr)) or result.user_id
    return DirectoryUser(
        subject=subject,
        username=str(username),
        email=_first(info.get("mail")) or None,
        display_name=_first(info.get("displayName")) or _first(info.get("cn")) or None,
        groups=frozenset(normal_dn(group["dn"]) for group in result.user_groups or () if group.get("dn")),
    )


# -- the bind ---------------------------------------------------------------------------


def _usable(text: str, *, control: bool = True) -> bool:
    """Text that can go to the directory: no NUL (nor, unless ``control``, any
    control character: the directory would match "ada\\n" as "ada"), UTF-8."""
    if "\x00" in text or (not control and any(ord(c) < 32 or ord(c) == 127 for c in text)):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unavailable(error: BaseException) -> errors.LDAPUnavailable:
    # The exception's class only: its text can quote the request.
    log.warning("flask-apitokens: LDAP directory unavailable (%s)", type(error).__name__)
    return errors.LDAPUnavailable()


def bind(app: Flask, username: str, password: str) -> AuthenticationResponse | None:
    """The directory's answer for a successful bind, None for refused
    credentials; raises 503 when the directory cannot be asked."""
    from flask_ldap3_login import AuthenticationResponseStatus
    from ldap3.core import exceptions as ldap_errors

    if not _usable(username, control=False) or not _usable(password):
        return None
    try:
        result = app.ldap3_login_manager.authenticate(username, password)  # type: ignore[attr-defined]
    except ldap_errors.LDAPException as exc:  # raised outside the library's own try blocks
        raise _unavailable(exc) from None
    if result.status == AuthenticationResponseStatus.success:
        return result
    # Results of the user's bind that mean "these credentials are not accepted".
    refused = (ldap_errors.LDAPInvalidCredentialsResult, ldap_errors.LDAPInappropriateAuthenticationResult,
               ldap_errors.LDAPUnwillingToPerformResult)
    if result.exception is not None and not isinstance(result.exception, refused):
        raise _unavailable(result.exception)
    return None


# -- the local user -------------------------------------------------------------------------


def group_scopes(groups: frozenset[str], mapping: dict[str, Any]) -> set[str]:
    allowed: set[str] = set()
    for dn, scopes in mapping.items():
        if normal_dn(dn) in groups:
            allowed.update(scopes)
    return allowed


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


def _find_link(entry: DirectoryUser) -> Any | None:
    Identity = state().models.Identity
    return state().db.session.execute(
        sa.select(Identity).where(Identity.provider == PROVIDER, Identity.subject == entry.subject)
    ).scalar_one_or_none()


def find_or_create_user(entry: DirectoryUser) -> Any:
    """The local user linked to ``entry``, updated from it; made on the first login."""
    link = _find_link(entry)
    if link is None:
        try:
            return _create_linked_user(entry)
        except (sa.exc.IntegrityError, errors.AccountConflict):
            state().db.session.rollback()
            # A concurrent first login of the same entry may have just made the link.
            link = _find_link(entry)
            if link is None:
                raise _conflict() from None
    return _update_linked_user(link, entry)


def _create_linked_user(entry: DirectoryUser) -> Any:
    st = state()
    users = st.users
    # An existing local account is never taken over by a directory entry of the same name.
    if users.find_by_login(entry.username) is not None or (entry.email and users.find_by_email(entry.email)):
        raise _conflict()
    user = users.create_user(username=entry.username, email=entry.email, display_name=entry.display_name)
    st.db.session.add(st.models.Identity(user_id=users.user_id(user), provider=PROVIDER, subject=entry.subject,
                                         email=entry.email))
    admin = _is_admin(entry)
    if admin is not None:
        users.update_user(user, is_admin=admin)
    st.db.session.flush()
    return user


def _update_linked_user(link: Any, entry: DirectoryUser) -> Any:
    users = state().users
    user = users.get(link.user_id)
    if user is None:
        raise errors.InvalidCredentials()
    changes: dict[str, Any] = {"display_name": entry.display_name}
    if entry.email and entry.email != users.profile(user)["email"]:
        owner = users.find_by_email(entry.email)
        if owner is None or users.user_id(owner) == users.user_id(user):
            changes["email"] = entry.email
            link.email = entry.email
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
    app = state.app
    if not app.config.get("LDAP_HOST"):
        return
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
