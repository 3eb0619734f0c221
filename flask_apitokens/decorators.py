"""View decorators: ``token_required``, ``login_or_token_required``, ``key_required``.

Each can be used bare (``@token_required``) or called (``@token_required(scopes=[...])``).
A missing or refused credential answers ``401`` JSON with ``WWW-Authenticate``;
a credential without a required scope answers ``403 insufficient_scope``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from flask_login import current_user

from . import errors
from .credentials import authenticate_request, set_lazy_user
from .service import KEY

F = TypeVar("F", bound=Callable[..., Any])


def require_credential(scopes: frozenset[str], *, allow_session: bool = False, keys_only: bool = False) -> None:
    """Check the current request's credential; raise an APITokensError if it fails."""
    info = authenticate_request()
    if info is None:
        if allow_session and current_user.is_authenticated:
            return  # a cookie session: scopes do not apply
        raise errors.Unauthorized("An API key is required." if keys_only else "A valid credential is required.")
    if keys_only and info.kind != KEY:
        raise errors.InvalidToken("Only an API key (Authorization: key ...) is accepted here.")
    if not info.scopes.issuperset(scopes):
        missing = " ".join(sorted(scopes - info.scopes))
        raise errors.InsufficientScope(
            f"The credential lacks the scope(s): {missing}.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(sorted(scopes))}"'},
        )
    set_lazy_user(info)


def _decorator(view: Callable[..., Any], scopes: frozenset[str], **options: bool) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            require_credential(scopes, **options)
        except errors.APITokensError as error:
            return error.response()
        return view(*args, **kwargs)

    return wrapper


def _make(name: str, doc: str, **options: bool) -> Any:
    @overload
    def decorate(view: F) -> F: ...
    @overload
    def decorate(view: None = None, *, scopes: Iterable[str] = ()) -> Callable[[F], F]: ...

    def decorate(view: Any = None, *, scopes: Iterable[str] = ()) -> Any:
        if isinstance(scopes, str):
            scopes = scopes.split()
        needed = frozenset(scopes)
        if view is not None:
            return _decorator(view, needed, **options)
        return lambda inner: _decorator(inner, needed, **options)

    decorate.__name__ = decorate.__qualname__ = name
    decorate.__doc__ = doc
    return decorate


token_required = _make(
    "token_required",
    """Only requests with a valid credential issued by the extension (an API token,
    an API key, an OAuth2 access token or a user-token JWT) reach the view.

    :param scopes: scopes the credential must all have.""",
)

login_or_token_required = _make(
    "login_or_token_required",
    """Like :func:`token_required`, but a logged-in session cookie is accepted too
    (scopes do not apply to a session). A credential in the header that is not
    valid is refused even when a session cookie is present.

    :param scopes: scopes a credential must all have.""",
    allow_session=True,
)

key_required = _make(
    "key_required",
    """Only requests with a valid API key (``Authorization: key X:XXX``) reach the view.

    :param scopes: scopes the key must all have.""",
    keys_only=True,
)
