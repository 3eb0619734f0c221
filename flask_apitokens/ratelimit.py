"""Rate limits on the routes that take a credential, with Flask-Limiter.

A route opts in with one line, the :func:`rate_limited` decorator on its view
function (module level, so it knows nothing of any application)::

    @rate_limited(account="username")   # or "email", BASIC, or None
    def authenticate_ldap() -> Response: ...

:func:`init_app` (called last in ``APITokens.init_app``) gives the application
its own :class:`flask_limiter.Limiter`, leaving any Limiter of the host alone,
and wraps every marked view of the application with two shared limits:

- ``APITOKENS_RATE_LIMIT`` per client address, and
- ``APITOKENS_ACCOUNT_RATE_LIMIT`` per account (named in the body field the
  route names, or in HTTP Basic), counting refused attempts (401) only. A
  name is resolved to its account when one exists, so its username and its
  email share one budget; a name no account has gets a budget of its own
  (case and spaces aside). Requests that name no account only count against
  the address limit.

Both limits are shared by all credential routes, so an attacker gains nothing
by switching routes. Flask-Limiter's own keys apply: ``RATELIMIT_ENABLED``,
``RATELIMIT_STORAGE_URI`` (``memory://`` by default; Redis for several
processes), ``RATELIMIT_KEY_PREFIX``, ``RATELIMIT_STRATEGY``. Over a limit the
route answers ``429 {"error": "rate_limited", ...}`` with ``Retry-After``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Response, after_this_request, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from . import errors
from .web import error_response, read_body

if TYPE_CHECKING:
    from .state import State

F = TypeVar("F", bound=Callable[..., Any])

#: ``account=BASIC``: the account name is the user name of HTTP Basic credentials.
BASIC = "basic"
_MARK = "_apitokens_rate_limited"
_ACCOUNT_MAX = 320


class RateLimited(errors.APITokensError):
    status = 429
    code = "rate_limited"
    message = "Too many attempts; wait before trying again (see Retry-After)."


def rate_limited(*, account: str | None = None) -> Callable[[F], F]:
    """Mark a credential-taking view: limited per address, and per account name
    read from the body field ``account`` (``"username"``, ``"email"``...) or,
    with ``account=BASIC``, from HTTP Basic. The view itself is returned unchanged."""

    def mark(view: F) -> F:
        setattr(view, _MARK, (account,))
        return view

    return mark


_ACCOUNTS = "apitokens.ratelimit_accounts"


def account_name(source: str | None) -> str | None:
    """The account name the request tries, normalized (case and spaces do not
    make a new bucket), or None when it names none. Worked out once per request:
    the limit asks twice (whether it applies, and its key)."""
    if source is None:
        return None
    found: dict[str, str | None] = request.environ.setdefault(_ACCOUNTS, {})
    if source not in found:
        found[source] = _account_name(source)
    return found[source]


def _account_name(source: str) -> str | None:
    value: Any
    if source == BASIC:
        try:
            authorization = request.authorization
        except (ValueError, UnicodeError):
            return None  # a header werkzeug cannot decode: the view answers it
        value = authorization.username if authorization is not None and authorization.type == "basic" else None
    else:
        try:
            value = read_body().get(source)
        except errors.APITokensError:
            return None  # the view answers the bad body itself
    if not isinstance(value, str) or not value.strip():
        return None
    name = _account_of(value.strip()[:_ACCOUNT_MAX], by_email=source == "email") or value.strip()
    # A digest keeps storage keys short, and email addresses out of Redis.
    return hashlib.sha256(name.casefold()[:_ACCOUNT_MAX].encode("utf-8", "replace")).hexdigest()[:32]


def _account_of(name: str, *, by_email: bool) -> str | None:
    """The account ``name`` names (its username, or email, or id), so that the
    username and the email of one account share one bucket; None for a name
    no account has (its bucket is then the name itself)."""
    import sqlalchemy as sa

    from .state import state

    try:
        name.encode("utf-8")  # a lone surrogate ("\udcff") cannot even be sent to the database
    except UnicodeEncodeError:
        return None
    if not name.isprintable():
        return None  # control characters: no account's name
    users = state().users
    try:
        user = users.find_by_email(name) if by_email else users.find_by_login(name)
    except sa.exc.SQLAlchemyError:
        state().db.session.rollback()
        return None  # the view meets the same outage and answers it
    if user is None:
        return None
    profile = users.profile(user)
    return str(profile.get("username") or profile.get("email") or f"\x00{profile['person_id']}")


_REACHED = "apitokens.ratelimit_passed"


def _reached(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def passed(*args: Any, **kwargs: Any) -> Any:
        request.environ[_REACHED] = True
        return view(*args, **kwargs)

    return passed


def _fail_closed(limited: Callable[..., Any], add_headers: Callable[[Response], Response],
                 refund: Callable[[Response], None]) -> Callable[..., Any]:
    """A limiter whose storage fails (Redis down) must not let guesses through
    unlimited, nor answer 500: the route answers 503 until the storage is back.
    The response, 429 included, gets the rate-limit headers (see :func:`_confine`)."""

    def after(response: Response) -> Response:
        refund(response)
        try:
            return _retry_after_only_on_429(add_headers(response))
        except Exception as exc:
            logging.getLogger("flask_apitokens").warning(
                "flask-apitokens: rate-limit storage error: %s", type(exc).__name__)
            return error_response(errors.ServiceUnavailable("The rate-limit store is unavailable; try again shortly.",
                                                            code="rate_limit_unavailable"))

    @functools.wraps(limited)
    def checked(*args: Any, **kwargs: Any) -> Any:
        after_this_request(after)
        try:
            return limited(*args, **kwargs)
        except (HTTPException, errors.APITokensError):
            raise  # 429, 413... are answers, not failures
        except Exception as exc:
            if request.environ.get(_REACHED):
                raise  # the view's own error, not the limiter's
            logging.getLogger("flask_apitokens").warning(
                "flask-apitokens: rate-limit storage error: %s", type(exc).__name__)
            raise errors.ServiceUnavailable("The rate-limit store is unavailable; try again shortly.",
                                            code="rate_limit_unavailable") from exc

    return checked


def _retry_after_only_on_429(response: Response) -> Response:
    """Flask-Limiter adds ``Retry-After`` to every response it counts; a client
    told to wait after a success would wait for nothing (RFC 9110 10.2.3 gives
    it to 429 and 503)."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


_ACCOUNT_SCOPE = "apitokens-account"


def _refunder(limiter: Limiter) -> Callable[[Response], None]:
    """Give back the account budget an attempt took, unless the credential was
    refused (401): only failures count against an account, so a script that
    logs in often does not lock its own account out.

    Every attempt is counted before the view runs (a test-then-count-after,
    Flask-Limiter's ``deduct_when``, would let a burst of parallel guesses all
    pass the test before any of them counts), then a success is refunded with
    a negative hit. Fixed-window (the default) and sliding-window-counter
    strategies can be refunded; with moving-window every attempt counts."""
    from limits.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

    def refund(response: Response) -> None:
        if not limiter.enabled:
            return
        strategy = limiter.limiter
        if response.status_code == 401 or not isinstance(
                strategy, (FixedWindowRateLimiter, SlidingWindowCounterRateLimiter)):
            return
        for counted in limiter.current_limits:
            if _ACCOUNT_SCOPE in counted.request_args and not counted.breached:
                try:
                    strategy.hit(counted.limit, *counted.request_args, cost=-1)
                except Exception as exc:  # the attempt stays counted: the safe side
                    logging.getLogger("flask_apitokens").warning(
                        "flask-apitokens: rate-limit storage error: %s", type(exc).__name__)

    return refund


def _breach_response(limit: Any) -> Response:
    response = error_response(RateLimited())
    response.apitokens_rate_limited = True  # type: ignore[attr-defined]  # tells our 429 from the host's
    return response


def init_app(app: Flask, state: State) -> Limiter:
    """Give ``app`` the extension's Limiter and wrap every view marked with
    :func:`rate_limited`. Call after every blueprint of the extension is registered."""
    settings = state.settings
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=app.config.get("RATELIMIT_STORAGE_URI") or "memory://",
        headers_enabled=True,
        on_breach=_breach_response,
    )
    add_headers = _confine(app, limiter)
    per_address = limiter.shared_limit(settings["RATE_LIMIT"], scope="apitokens-address")
    refund = _refunder(limiter)
    for endpoint, view in list(app.view_functions.items()):
        mark = getattr(view, _MARK, None)
        if mark is None:
            continue
        (source,) = mark

        def key(source: str | None = source) -> str:
            return account_name(source) or ""

        def unknown_name(source: str | None = source) -> bool:
            return account_name(source) is None

        per_account = limiter.shared_limit(
            settings["ACCOUNT_RATE_LIMIT"], scope=_ACCOUNT_SCOPE, key_func=key, exempt_when=unknown_name,
        )
        # Wrapped per application: the module-level view stays as it was.
        app.view_functions[endpoint] = _fail_closed(per_address(per_account(_reached(view))), add_headers, refund)

    previous = app.error_handler_spec[None].get(429, {}).get(RateLimitExceeded)

    def too_many(error: RateLimitExceeded) -> Any:
        if getattr(error.response, "apitokens_rate_limited", False):
            return error.response
        return previous(error) if previous is not None else error

    app.register_error_handler(RateLimitExceeded, too_many)
    return limiter


def _confine(app: Flask, limiter: Limiter) -> Callable[[Response], Response]:
    """Take this Limiter's app-wide hooks off the host's requests; return the
    one that adds the rate-limit headers, for the marked views to run.

    ``Limiter.init_app`` hooks every request of the application: before it, to
    check default and application limits; after it, to add headers and reset
    its context. This Limiter has neither kind (the marked views check their
    own limits inside the view), so on every other request those hooks only
    cost time: about 50 µs, nearly all of what the extension added to an
    unprotected route (``bench/``). Worse, the before-request check would read
    the host's ``RATELIMIT_DEFAULT`` / ``RATELIMIT_APPLICATION`` and count
    every host request a second time. The reset is not needed either: the
    context lives on the request context, which ends with the request."""
    ours: list[Callable[..., Any]] = []

    def keep(hook: Callable[..., Any]) -> bool:
        if getattr(hook, "__self__", None) is limiter:  # the check, and the context reset
            return False
        if getattr(hook, "args", None) == (limiter,):  # partial(Limiter.__inject_headers, limiter)
            ours.append(hook)
            return False
        return True

    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)  # type: ignore[assignment]
    for hooks in registries:
        hooks[None] = [hook for hook in hooks.get(None, []) if keep(hook)]
    if len(ours) > 1:
        raise RuntimeError("flask-apitokens: this Flask-Limiter version hooks requests in an unexpected way")
    return ours[0] if ours else _unchanged  # none with RATELIMIT_ENABLED = False


def _unchanged(response: Response) -> Response:
    return response
