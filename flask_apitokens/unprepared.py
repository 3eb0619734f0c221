"""The extension's statements never depend on a named prepared statement.

psycopg 3 prepares a statement under a name (``_pg3_0``...) once it has run
``prepare_threshold`` times (5) on a connection, and ``executemany`` prepares
at once. Behind PgBouncer in transaction mode (Debian 12 ships 1.18) the next
transaction may run on another server connection, where that name is missing
or is another client's: ``prepared statement "_pg3_0" already exists``.

A prepared statement saves PostgreSQL a parse and plan per execution, a
large part of the token check's cost (measured: the check's statement took 4
to 9 times as long unprepared). So each new connection is asked whether it
reaches the server directly (:func:`reaches_server_directly`: the server
process answering is the one named at start-up, and over TCP the address and
port psycopg connected to are the ones the server sees). If it does, nothing
changes (over TCP or PostgreSQL's own Unix socket). If not (PgBouncer, any
proxy, a port mapping), on a psycopg engine the statements that read or write the
extension's tables or the user table (the extension's, and the host's own
user loads, which the extension's pages make too) run unprepared, through the
dialect's ``do_execute``/``do_executemany`` events, and the token check's own
connections never prepare (:mod:`flask_apitokens.tokenstore`). The host's
other statements are left as the host configured them: behind such a pooler
the host sets ``connect_args={"prepare_threshold": None}`` for its own (see
docs/deployment.rst).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

#: Every table of the extension starts with it.
TABLE_PREFIX = "apitokens_"
#: Set in a pooled connection's ``info`` when it was found to reach the server directly.
DIRECT = "apitokens_direct"


def reaches_server_directly(driver: Any, *, rollback: bool = False) -> bool:
    """Whether a psycopg connection talks to PostgreSQL itself: the server
    process answering is the one the connection's start-up named (a pooler
    hands its clients keys of its own: PgBouncer's are random), and over TCP
    the address and port it connected to are the ones the server accepted it
    on; over a Unix socket there is no address to compare. False when in
    doubt (an error): unprepared is always correct."""
    try:
        info = driver.info
        cursor = driver.cursor()
        try:
            cursor.execute("SELECT host(inet_server_addr()), inet_server_port(), pg_backend_pid()", prepare=False)
            address, port, pid = cursor.fetchone()
        finally:
            cursor.close()
        if rollback and not driver.autocommit:
            driver.rollback()
        if pid != info.backend_pid:
            return False
        if address is None:  # the server's end is a Unix socket: so must ours be
            return not info.hostaddr and str(info.host).startswith("/")
        return bool(port == info.port and address == info.hostaddr)
    except Exception:  # noqa: BLE001 - any doubt means "not direct"
        return False


def install(engine: sa.Engine, other_tables: Iterable[str] = ()) -> bool:
    """Run the extension's statements on ``engine`` unprepared (psycopg only).
    Returns whether anything was installed."""
    if engine.dialect.driver != "psycopg" or sa.event.contains(engine, "do_execute", _marker):
        return False
    names = (TABLE_PREFIX, *(f'"{name}"' for name in other_tables), *(f" {name}" for name in other_tables))

    def ours(statement: str, cursor: Any, context: Any) -> bool:
        if not any(name in statement for name in names):
            return False
        if context is None:
            return True
        info = context.root_connection.info  # the pooled connection's, kept with it
        direct = info.get(DIRECT)
        if direct is None:
            # Asked once per connection, inside whatever transaction it is in (a SELECT).
            direct = info[DIRECT] = reaches_server_directly(cursor.connection)
        return not direct

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not ours(statement, cursor, context):
            return False
        cursor.execute(statement, parameters, prepare=False)
        return True

    def do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not ours(statement, cursor, context):
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
