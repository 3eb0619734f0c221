"""Mistakes a host can make when setting the extension up, found at start with
a message that names what is wrong, rather than as a 401 or a 500 later.

- :func:`check_user_model` (at ``init_app``): the user model is a mapped class
  with one primary-key column, and the default store can check its passwords
  when a password route is on.
- :func:`check_view_scopes` (before the first request): every scope a view's
  decorator asks for is declared. Decorators run at import time, before
  ``init_app`` and often before the app exists, so they only note their scopes
  on the view; the routes are all registered by the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Flask

#: Set by the decorators on the view they wrap: the scopes it asks for.
SCOPES_ATTRIBUTE = "_apitokens_scopes"

#: Routes that check a local password (the default store's ``check_password``).
PASSWORD_SWITCHES = ("APITOKENS_USERPASS", "APITOKENS_PASSWORD_EXCHANGE", "APITOKENS_USER_TOKEN")


def check_user_model(user_model: Any, values: Mapping[str, Any], *, default_store: bool) -> None:
    """Raise :class:`RuntimeError` naming what the extension cannot use in ``user_model``."""
    name = getattr(user_model, "__name__", repr(user_model))
    mapper = sa.inspect(user_model, raiseerr=False) if isinstance(user_model, type) else None
    if not isinstance(mapper, sa.orm.Mapper):
        raise RuntimeError(
            f"flask-apitokens: user_model={name} is not a mapped SQLAlchemy model; pass your "
            "Flask-SQLAlchemy user class (a db.Model subclass)")
    if len(mapper.primary_key) != 1:
        raise RuntimeError(
            f"flask-apitokens: user_model={name} needs a primary key of exactly one column "
            f"(it has {len(mapper.primary_key)})")
    if not default_store:
        return
    switched_on = [key for key in PASSWORD_SWITCHES if values.get(key)]
    columns = mapper.local_table.c if mapper.local_table is not None else ()
    has_password = any(column in columns for column in ("password_hash", "password"))
    if switched_on and not has_password and not callable(getattr(user_model, "check_password", None)):
        hints = [c.name for c in mapper.columns if "password" in c.name or "hash" in c.name]
        found = f" (it has {', '.join(hints)})" if hints else ""
        raise RuntimeError(
            f"flask-apitokens: user_model={name} has no password_hash or password column and no "
            f"check_password(password) method{found}, so every password login would fail. Add a "
            f"check_password method, or switch off {', '.join(switched_on)} "
            "(or pass user_store= with your own authenticate)")


def view_scopes(view: Any) -> frozenset[str] | None:
    """The scopes a view's decorator asked for, or None for a view without one."""
    while view is not None:
        scopes = getattr(view, SCOPES_ATTRIBUTE, None)
        if scopes is not None:
            return scopes  # type: ignore[no-any-return]
        view = getattr(view, "__wrapped__", None)
    return None


def check_view_scopes(app: Flask, declared: Mapping[str, str]) -> None:
    """Raise :class:`RuntimeError` naming the first view that asks for a scope
    ``declared`` (``APITOKENS_SCOPES`` and the built-in ones) lacks."""
    for endpoint, view in sorted(app.view_functions.items()):
        unknown = sorted((view_scopes(view) or frozenset()) - set(declared))
        if unknown:
            raise RuntimeError(
                f"flask-apitokens: the view {endpoint!r} asks for the scope(s) {', '.join(unknown)}, which "
                f"APITOKENS_SCOPES does not declare (declared: {', '.join(sorted(declared))}). "
                "Declare it, or fix the spelling.")


def install_scope_check(app: Flask, declared: Mapping[str, str]) -> None:
    """Check the views' scopes before the first request. Until the mistake is
    mended every request fails with the same message, so it cannot be missed;
    once the check passes it takes itself off (no cost per request)."""

    def check() -> None:
        check_view_scopes(app, declared)
        hooks = app.before_request_funcs[None]
        if check in hooks:
            # A new list: Flask is iterating over the current one.
            app.before_request_funcs[None] = [hook for hook in hooks if hook is not check]

    app.before_request(check)
