"""From the ``Authorization`` header to a checked credential, and to Flask-Login.

- :func:`authenticate_request` reads the header once per request and asks the
  service to check what it holds. Schemes the extension does not own (``Basic``,
  ``Digest``...) are left to the host.
- :data:`current_token` is the credential of the current request
  (a :class:`~flask_apitokens.service.TokenInfo`), falsy for a cookie session.
- :func:`install_request_loader` adds a Flask-Login request loader that logs a
  credential in only when it carries the built-in ``login`` scope, and hands a
  credential that is not in the extension's format to the request loader the
  host registered before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import current_app, g, has_request_context, request
from flask_login import AnonymousUserMixin, current_user, logout_user, user_loaded_from_request
from werkzeug.local import LocalProxy

from .config import LOGIN_SCOPE
from .errors import AccountDisabled, APITokensError, ForeignCredential, Unauthorized
from .state import state
from .tokeninfo import MAX_CREDENTIAL_LENGTH

if TYPE_CHECKING:
    from .service import TokenInfo

#: Scheme names (lower case) the extension owns.
SCHEMES = frozenset(("token", "key", "bearer"))

_NO_CREDENTIAL = object()
# The checked credential lives with the request (not in ``g``, which an app
# context pushed around several requests, as in tests, would share).
_ENVIRON_KEY = "apitokens.credential"
_FOREIGN_SIGNALLED = "apitokens.foreign-signalled"
# The owner's row as the check's statement read it (see TokenService.check).
_OWNER_KEY = "apitokens.owner"


def read_authorization(header: str | None) -> tuple[str, str] | None:
    """``(scheme, credential)`` from an Authorization header value, the scheme
    lower-cased; None when there is no header or the scheme is not ours."""
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        return None
    return scheme, credential.strip()


def authenticate_request(*, for_loader: bool = False) -> TokenInfo | None:
    """The request's credential, checked (once per request). None when the
    request carries no credential in a scheme of ours; raises InvalidToken for a
    bad one, and its subclass ForeignCredential for one not in our format.

    :param for_loader: the request loader asks: a foreign credential may be the
        host's own, so it is not reported as a failed authentication."""
    environ = request.environ
    found = environ.get(_ENVIRON_KEY, _NO_CREDENTIAL)
    if found is not _NO_CREDENTIAL:
        if isinstance(found, Exception):
            if isinstance(found, ForeignCredential) and not for_loader:
                _foreign_refused(environ)
            raise found
        return cast("TokenInfo | None", found)
    # Straight from the environ: what request.headers and request.remote_addr
    # read, without building their wrappers on every protected request.
    presented = read_authorization(environ.get("HTTP_AUTHORIZATION"))
    if presented is None:
        environ[_ENVIRON_KEY] = None
        return None
    scheme, credential = presented
    service = state().service
    try:
        if not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
            raise ForeignCredential()
        info, environ[_OWNER_KEY] = service.check(credential, scheme=scheme, ip=environ.get("REMOTE_ADDR"),
                                                  user_agent=environ.get("HTTP_USER_AGENT"))
    except APITokensError as error:
        environ[_ENVIRON_KEY] = error
        if isinstance(error, ForeignCredential) and not for_loader:
            _foreign_refused(environ)
        raise
    environ[_ENVIRON_KEY] = info
    return info


def _foreign_refused(environ: dict[str, Any]) -> None:
    """authentication_failed (reason ``malformed``), once per request, when one
    of the extension's views refuses a credential that is not in its format."""
    if not environ.get(_FOREIGN_SIGNALLED):
        environ[_FOREIGN_SIGNALLED] = True
        state().service.report_refused("malformed")


def get_current_token() -> TokenInfo | None:
    """The current request's checked credential, or None."""
    if not has_request_context():
        return None
    found = request.environ.get(_ENVIRON_KEY)
    return None if isinstance(found, Exception) else found


#: The credential of the current request, or a falsy proxy (cookie session, none).
#: Typed as what it holds: test it with ``if current_token:`` (the proxy itself
#: is never None), or call :func:`get_current_token` for a plain Optional.
current_token: TokenInfo | None = cast("TokenInfo | None", LocalProxy(get_current_token))


def session_user() -> Any:
    """The person logged in to this request without one of our credentials (a
    cookie session, or the host's own request loader), or None. A person
    deactivated since is logged out and refused (403 account_disabled): the
    same rule as the token check, :meth:`UserStore.is_active`."""
    if not current_user.is_authenticated:
        return None
    user = current_user._get_current_object()
    if not state().users.is_active(user):
        logout_user()
        raise AccountDisabled()
    return user


def token_owner(info: TokenInfo) -> Any | None:
    """The owner of the current request's credential ``info``: made from the
    row the check read when there is one (no SQL), else loaded."""
    return state().service.owner(info.user_id, request.environ.get(_OWNER_KEY))


def _load_user(info: TokenInfo) -> Any:
    """The token owner, as Flask-Login's ``current_user`` will see it."""
    user = token_owner(info)
    if user is None:
        return AnonymousUserMixin()
    user_loaded_from_request.send(current_app._get_current_object(), user=user)  # type: ignore[attr-defined]
    return user


def set_lazy_user(info: TokenInfo) -> None:
    """Make the token's owner Flask-Login's ``current_user`` for this request,
    made (from the row the check read, or loaded) only if the view reads it."""
    loaded: list[Any] = []

    def load() -> Any:
        if not loaded:
            loaded.append(_load_user(info))
        return loaded[0]

    g._login_user = LocalProxy(load)


def install_request_loader(login_manager: Any) -> None:
    """Add a request loader to ``login_manager`` that logs in the owner of a
    credential of ours carrying the ``login`` scope, and chains to the host's
    own for everything not in the extension's format.

    A credential of ours without ``login`` is no user here (Flask-Login's
    unauthorized answer on ``@login_required``): it reaches only the views its
    scopes open, through the extension's decorators, which make its owner
    ``current_user`` for the view they protect (:func:`set_lazy_user`)."""
    previous = login_manager._request_callback
    if getattr(previous, "_apitokens", False):
        return

    def load_user_from_request(req: Any) -> Any:
        try:
            info = authenticate_request(for_loader=True)
        except ForeignCredential:
            return previous(req) if previous is not None else None  # perhaps the host's own
        except Unauthorized:
            return None  # a refused credential of ours is no user; an outage (503) propagates
        if info is not None:
            return token_owner(info) if LOGIN_SCOPE in info.scopes else None
        return previous(req) if previous is not None else None

    load_user_from_request._apitokens = True  # type: ignore[attr-defined]
    login_manager.request_loader(load_user_from_request)
