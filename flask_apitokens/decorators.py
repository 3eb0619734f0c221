"""View decorators: ``token_required``, ``login_or_token_required``, ``key_required``.

Each can be used bare (``@token_required``) or called (``@token_required(scopes=[...])``).
A missing or refused credential answers ``401`` JSON with ``WWW-Authenticate``;
a credential without a required scope answers ``403 insufficient_scope``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

from . import errors
from .credentials import authenticate_request, session_user, set_lazy_user
from .service import KEY
from .startup import SCOPES_ATTRIBUTE
from .state import state
from .web import error_response

F = TypeVar("F", bound=Callable[..., Any])


def require_credential(scopes: frozenset[str], *, allow_session: bool = False, keys_only: bool = False) -> None:
    """Check the current request's credential; raise an APITokensError if it fails."""
    info = authenticate_request()
    if info is None:
        state()  # a RuntimeError that says to call init_app, if nobody did
        if allow_session and session_user() is not None:
            return  # a cookie session of an active person: scopes do not apply
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


def _decorator(view: F, scopes: frozenset[str], **options: bool) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            require_credential(scopes, **options)
        except errors.APITokensError as error:
            return error_response(error)
        return view(*args, **kwargs)

    # Checked against APITOKENS_SCOPES before the first request (see startup.py):
    # a misspelled scope would otherwise answer 403 forever.
    setattr(wrapper, SCOPES_ATTRIBUTE, scopes)
    return cast(F, wrapper)


def _apply(view: F | None, scopes: Iterable[str], **options: bool) -> F | Callable[[F], F]:
    needed = frozenset(scopes.split() if isinstance(scopes, str) else scopes)
    if view is not None:
        return _decorator(view, needed, **options)
    return lambda inner: _decorator(inner, needed, **options)


# Each decorator is typed twice (bare and called), so a decorated view keeps its
# own type under mypy --strict and in an IDE (tests/typing_host.py checks it).
@overload
def token_required(view: F) -> F: ...
@overload
def token_required(view: None = None, *, scopes: Iterable[str] = ()) -> Callable[[F], F]: ...
def token_required(view: F | None = None, *, scopes: Iterable[str] = ()) -> F | Callable[[F], F]:
    """Only requests with a valid credential issued by the extension (an API token,
    an API key, an OAuth2 access token or a user-token JWT) reach the view.

    :param scopes: scopes the credential must all have; each must be declared in
        ``APITOKENS_SCOPES`` (checked before the first request)."""
    return _apply(view, scopes)


@overload
def login_or_token_required(view: F) -> F: ...
@overload
def login_or_token_required(view: None = None, *, scopes: Iterable[str] = ()) -> Callable[[F], F]: ...
def login_or_token_required(view: F | None = None, *, scopes: Iterable[str] = ()) -> F | Callable[[F], F]:
    """Like :func:`token_required`, but a logged-in session cookie is accepted too
    (scopes do not apply to a session). A credential in the header that is not
    valid is refused even when a session cookie is present.

    :param scopes: scopes a credential must all have."""
    return _apply(view, scopes, allow_session=True)


@overload
def key_required(view: F) -> F: ...
@overload
def key_required(view: None = None, *, scopes: Iterable[str] = ()) -> Callable[[F], F]: ...
def key_required(view: F | None = None, *, scopes: Iterable[str] = ()) -> F | Callable[[F], F]:
    """Only requests with a valid API key (``Authorization: key X:XXX``) reach the view.

    :param scopes: scopes the key must all have."""
    return _apply(view, scopes, keys_only=True)
