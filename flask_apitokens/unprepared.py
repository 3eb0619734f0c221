"""The extension's statements never depend on a named prepared statement.

psycopg 3 prepares a statement under a name (``_pg3_0``...) once it has run
``prepare_threshold`` times (5) on a connection, and ``executemany`` prepares
at once. Behind PgBouncer in transaction mode (Debian 12 ships 1.18) the next
transaction may run on another server connection, where that name is missing
or is another client's: ``prepared statement "_pg3_0" already exists``.

So on a psycopg engine, statements that read or write the extension's tables
or the user table (the extension's, and the host's own user loads, which the
extension's pages make too) run unprepared, through the dialect's
``do_execute``/``do_executemany`` events. The host's other statements are left
as the host configured them: behind such a pooler the host sets
``connect_args={"prepare_threshold": None}`` for its own (see
docs/deployment.rst). The token check's own connections never prepare
(:mod:`flask_apitokens.tokenstore`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

#: Every table of the extension starts with it.
TABLE_PREFIX = "apitokens_"


def install(engine: sa.Engine, other_tables: Iterable[str] = ()) -> bool:
    """Run the extension's statements on ``engine`` unprepared (psycopg only).
    Returns whether anything was installed."""
    if engine.dialect.driver != "psycopg" or sa.event.contains(engine, "do_execute", _marker):
        return False
    names = (TABLE_PREFIX, *(f'"{name}"' for name in other_tables), *(f" {name}" for name in other_tables))

    def ours(statement: str) -> bool:
        return any(name in statement for name in names)

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not ours(statement):
            return False
        cursor.execute(statement, parameters, prepare=False)
        return True

    def do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not ours(statement):
            return False
        # executemany takes no prepare argument, and prepares at once unless the connection says never.
        connection = cursor.connection
        threshold = connection.prepare_threshold
        connection.prepare_threshold = None
        try:
            cursor.executemany(statement, parameters)
        finally:
            connection.prepare_threshold = threshold
        return True

    sa.event.listen(engine, "do_execute", do_execute)
    sa.event.listen(engine, "do_executemany", do_executemany)
    sa.event.listen(engine, "do_execute", _marker)
    return True


def _marker(*args: Any) -> bool:
    """Listens last, never handles: says this engine's dialect is already set up."""
    return False
