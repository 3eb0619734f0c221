"""A database error the extension answers with ``503``: logged once, with its
cause and what to do, and no secret.

The log goes to the ``flask_apitokens`` logger. A missing table (the host
created its tables before ``init_app``, or has not run its migration) is told
apart from an outage, since it will not go away by waiting. Only the
driver's first line is logged: the statement's parameters (a token's public
id, an account name) stay out. No credential secret ever reaches the database,
so none can reach this log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlalchemy as sa

from . import errors

log = logging.getLogger("flask_apitokens")

#: SQLite: "no such table: x"; PostgreSQL: 'relation "x" does not exist' (SQLSTATE 42P01).
_MISSING_TABLE = re.compile(r'no such table: ([\w.]+)|relation "([\w.]+)" does not exist')
_LOGGED = "_apitokens_logged"
_MESSAGE = "The token store is unavailable; try again shortly."


def missing_table(exc: BaseException) -> str | None:
    """The name of the table a database error says is missing, or None."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) not in (None, "42P01"):
        return None
    found = _MISSING_TABLE.search(str(orig).partition("\n")[0])
    return (found.group(1) or found.group(2)) if found else None


def cause(exc: BaseException) -> str:
    """The driver's error class and first line, at most 300 characters."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().partition("\n")[0][:300]
    return f"{type(orig).__name__}: {first}" if first else type(orig).__name__


def log_once(exc: BaseException, where: str) -> None:
    """Log ``exc`` unless it (or the error it became) was logged already."""
    original = exc
    if getattr(original, _LOGGED, False):
        return
    setattr(original, _LOGGED, True)
    table = missing_table(original)
    if table is not None:
        log.error(
            "flask-apitokens: table %s does not exist (%s), so %s answers 503. Create the extension's "
            "tables: run your migration (flask db migrate, then flask db upgrade), or call "
            "APITokens.init_app before db.create_all().", table, cause(original), where,
        )
    else:
        log.warning("flask-apitokens: database error in %s, answering 503: %s", where, cause(original))


def unavailable(exc: BaseException, where: str, message: str = _MESSAGE) -> errors.ServiceUnavailable:
    """Log ``exc`` once and return the 503 to raise ``from`` it."""
    log_once(exc, where)
    return errors.ServiceUnavailable(message)


def commit(session: Any) -> None:
    """Commit ``session``; a database failure rolls it back and becomes a 503."""
    try:
        session.commit()
    except sa.exc.DBAPIError as exc:
        session.rollback()
        raise unavailable(exc, "a commit") from exc


def is_unavailable(exc: Any) -> bool:
    """Whether the blueprints' handler should answer ``exc`` with 503: a lost or
    refused connection, a lock timeout, or a missing table. Another programming
    error (bad SQL) stays a 500."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    return isinstance(exc, sa.exc.ProgrammingError) and missing_table(exc) is not None
