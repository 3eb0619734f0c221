"""The token check's own database access: a few detached autocommit DBAPI
connections and statements compiled once, so the check is one round trip with
no pool checkout and no BEGIN/ROLLBACK (see docs/performance.rst).

Nothing is cached but connections: every check reads the latest committed row.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import SQLCompiler


class Held(NamedTuple):
    """One kept connection: the pool's record (detached), the driver's
    connection, a cursor reused by every statement run on it (making a new
    one per statement cost psycopg a fifth of its time), and when and in
    which pool generation it was made."""

    fairy: Any
    driver: Any
    cursor: Any
    born: float
    generation: int


_forks = [0]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class TokenStoreConnections:
    """A few DBAPI connections kept for the token check, in the driver's
    autocommit mode.

    Each is taken from the engine's pool (so the host's ``connect`` events ran
    on it) and then detached from it: a pool checkout and check-in cost more
    than the whole SQLite lookup (see ``bench/``), and on PostgreSQL autocommit
    saves the ``BEGIN`` and ``ROLLBACK`` round trips. In autocommit every
    statement is its own transaction, so each check reads what other processes
    last committed; no data is kept. Idle connections are at most the pool's
    size; they are closed when the engine is disposed or this object is
    collected, replaced after the pool's ``pool_recycle`` age or any error, and
    left alone (never used, never closed) in a forked child.

    Engines whose pool holds the database itself (``StaticPool``,
    ``SingletonThreadPool``: SQLite in memory) are used through their pool.
    While the host watches the engine's SQL (``echo``, or a
    ``before_cursor_execute`` / ``after_cursor_execute`` listener, as SQL
    tracing tools install), statements go through SQLAlchemy Core instead, so
    they are seen like every other.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        pool = engine.pool
        self.pooled = isinstance(pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool))
        self.sqlite = engine.dialect.name == "sqlite"
        size = pool.size() if isinstance(pool, sa.pool.QueuePool) else 5
        self.limit = max(1, size)
        recycle = getattr(pool, "_recycle", -1)
        self.recycle = float(recycle) if isinstance(recycle, (int, float)) and recycle > 0 else None
        self.forks = _forks[0]
        self.generation = 0
        # list.pop and list.append are atomic.
        self.idle: list[Held] = []
        self._inherited: list[Any] = []
        self._core_engine: sa.Engine | None = None
        self.direct: bool | None = None
        weakref.finalize(self, _close_all, self.idle)
        sa.event.listen(engine, "engine_disposed", self._disposed)

    def instrumented(self) -> bool:
        """True while something watches the engine's SQL (checked per statement)."""
        dispatch = self.engine.dispatch
        return bool(self.engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    @property
    def core_engine(self) -> sa.Engine:
        """The engine for the Core path: without a transaction around a single
        statement where the driver would open one."""
        if self._core_engine is None:
            engine = self.engine
            if not self.sqlite:
                engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._core_engine = engine
        return self._core_engine

    def _disposed(self, engine: sa.Engine) -> None:
        self.generation += 1
        _close_all(self.idle)

    def checkout(self) -> Held:
        if self.forks != _forks[0]:
            # A forked child must not use, nor close, its parent's connections.
            self._inherited.append(list(self.idle))
            self.idle.clear()
            self.forks = _forks[0]
        while True:
            try:
                held = self.idle.pop()
            except IndexError:
                return self._connect()
            if self.recycle is None or time.monotonic() - held.born < self.recycle:
                return held
            _close(held)

    def checkin(self, held: Held) -> None:
        if held.generation == self.generation and self.forks == _forks[0] and len(self.idle) < self.limit:
            self.idle.append(held)
        else:
            _close(held)

    def discard(self, held: Held) -> None:
        _close(held)

    def lost(self, exc: BaseException) -> None:
        """A connection was found dropped by the server (a restart, a failover):
        the others likely were too. Like SQLAlchemy on a disconnect, close ours
        and have the pool replace each of its own on its next checkout."""
        _close_all(self.idle)
        invalidate = getattr(self.engine.pool, "_invalidate", None)
        if invalidate is not None:
            invalidate(None, exc, _checkin=False)

    def _direct(self, driver: Any) -> bool:
        """Whether our connections reach PostgreSQL itself (so prepared
        statements are safe, and save the server a parse and plan per check):
        asked once, of the first connection (see unprepared.py)."""
        if self.direct is None:
            from .unprepared import reaches_server_directly

            self.direct = reaches_server_directly(driver)
        return self.direct

    def _connect(self) -> Held:
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            fairy = self.engine.raw_connection()
        except dbapi_error as exc:
            # The pool hands out the driver's own error (Engine.connect() would wrap it):
            # wrap it, so an unreachable database is a DBAPIError (503), not a 500.
            raise sa.exc.DBAPIError.instance(None, None, exc, dbapi_error, dialect=self.engine.dialect) from exc
        driver: Any = fairy.driver_connection
        try:
            if self.sqlite:
                driver.isolation_level = None  # autocommit: no implicit BEGIN before a write
            else:
                driver.autocommit = True
                if hasattr(driver, "prepare_threshold") and not self._direct(driver):
                    # psycopg would prepare a statement run 5 times under a name, which
                    # PgBouncer in transaction mode cannot follow across server connections.
                    driver.prepare_threshold = None
            cursor = driver.cursor()
        except Exception:
            fairy.close()  # back to the pool as it was lent
            raise
        fairy.detach()
        return Held(fairy, driver, cursor, time.monotonic(), self.generation)


def _close(held: Held) -> None:
    try:
        held.fairy.close()
    except Exception:  # noqa: BLE001,S110 - it is being thrown away
        pass


def _close_all(idle: list[Held]) -> None:
    while idle:
        try:
            held = idle.pop()
        except IndexError:
            return
        _close(held)


class RawStatement:
    """A Core statement compiled once for one engine's dialect, run on a raw
    DBAPI cursor (see :class:`TokenStoreConnections`).

    Bind and result values go through the column types' own processors (SQLite
    keeps datetimes as text), so rows look as they would through Core; only
    the first ``processed`` columns of a SELECT are converted (the rest are
    the driver's values, for the caller to convert if it needs them). Driver
    errors become :class:`sqlalchemy.exc.DBAPIError`; a SELECT that found its
    connection lost is tried once more on a new one.
    """

    def __init__(self, statement: sa.ClauseElement, connections: TokenStoreConnections,
                 processed: int | None = None) -> None:
        dialect = connections.engine.dialect
        # A Core statement compiles to an SQLCompiler (positional names and binds).
        compiled = cast("SQLCompiler", statement.compile(dialect=dialect))
        self.statement = statement
        self.connections = connections
        self.dialect = dialect
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ()) if compiled.positional else None
        self.binds = [(name, bind.type.dialect_impl(dialect).bind_processor(dialect))
                      for name, bind in compiled.binds.items()]
        self.results: list[tuple[int, Callable[[Any], Any]]] = []
        if isinstance(statement, sa.Select):
            for index, column in enumerate(list(statement.selected_columns)[:processed]):
                process = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    self.results.append((index, process))
        # The lookup's one parameter needs no conversion: skip the general path.
        self._single = self.binds[0][0] if len(self.binds) == 1 and self.binds[0][1] is None else None

    def _parameters(self, values: dict[str, Any]) -> Any:
        single = self._single
        if single is not None:
            return {single: values[single]} if self.names is None else (values[single],)
        processed = {name: process(values[name]) if process is not None else values[name]
                     for name, process in self.binds}
        if self.names is None:
            return processed
        return tuple(processed[name] for name in self.names)

    def first(self, values: dict[str, Any]) -> Sequence[Any] | None:
        """The first row of a SELECT, processed; None if there is none."""
        parameters = self._parameters(values)
        if self.connections.instrumented():
            # The compiled SQL as it is, so the row holds the driver's values as below.
            with self.connections.core_engine.connect() as conn:
                found = conn.exec_driver_sql(self.sql, parameters).first()
            if found is None:
                return None
            row = list(found)
        else:
            fetched = self._run(parameters, write=False)
            if fetched is None:
                return None
            row = list(fetched)
        for index, process in self.results:
            row[index] = process(row[index])
        return row

    def rowcount(self, values: dict[str, Any]) -> int:
        """Run a write (committed at once); the number of rows it changed."""
        parameters = self._parameters(values)
        if self.connections.instrumented():
            with self.connections.core_engine.begin() as conn:
                return int(conn.exec_driver_sql(self.sql, parameters).rowcount)
        return int(self._run(parameters, write=True))

    def _run(self, parameters: Any, *, write: bool) -> Any:
        connections = self.connections
        if connections.pooled:
            return self._run_pooled(parameters, write=write)
        for attempt in (1, 2):
            held = connections.checkout()
            driver, cursor = held.driver, held.cursor
            try:
                cursor.execute(self.sql, parameters)
                result = cursor.rowcount if write else cursor.fetchone()
            except self.dialect.loaded_dbapi.Error as exc:
                # Asked before the connection is closed: a closed one always looks lost.
                lost = self.dialect.is_disconnect(exc, driver, cursor)
                connections.discard(held)
                if lost:
                    connections.lost(exc)
                if lost and attempt == 1 and not write:
                    continue  # a connection the server dropped while idle: once more on a new one
                raise sa.exc.DBAPIError.instance(self.sql, parameters, exc, self.dialect.loaded_dbapi.Error) from exc
            except BaseException:
                connections.discard(held)
                raise
            connections.checkin(held)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_pooled(self, parameters: Any, *, write: bool) -> Any:
        fairy = self.connections.engine.raw_connection()
        try:
            cursor = fairy.cursor()
            cursor.execute(self.sql, parameters)
            result = cursor.rowcount if write else cursor.fetchone()
            cursor.close()
            if write:
                fairy.commit()
            return result
        except self.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(self.sql, parameters, exc, self.dialect.loaded_dbapi.Error) from exc
        finally:
            fairy.close()
