"""The directory, through flask-ldap3-login: its setup on the application, the
bind that checks a password, and what is read of the entry (its stable id,
names, email and groups). :mod:`flask_apitokens.methods.ldap` is the route
that uses it.

Every directory call is bounded by ``APITOKENS_LDAP_TIMEOUT``: flask-ldap3-login's
own server pool waits 10 s per failed cycle and has no receive timeout, so this
module puts a server with a connect timeout in a non-checking pool and gives
every connection a receive timeout.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from . import errors
from .users import is_utf8

if TYPE_CHECKING:
    # flask-ldap3-login and ldap3 are the optional "ldap" extra: imported only when LDAP is configured.
    from flask_ldap3_login import AuthenticationResponse, LDAP3LoginManager

log = logging.getLogger(__name__)

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
    return is_utf8(text)


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


# -- groups ------------------------------------------------------------------------------


def group_scopes(groups: frozenset[str], mapping: dict[str, Any]) -> set[str]:
    allowed: set[str] = set()
    for dn, scopes in mapping.items():
        if normal_dn(dn) in groups:
            allowed.update(scopes)
    return allowed
