"""The token's owner from the columns the token check already read.

The check's one statement joins the user table (see
:meth:`~flask_apitokens.service.TokenService.check`), so ``current_user`` can
be made without a second statement: an instance of the host's model is filled
from those values and placed in the host's session as a persistent,
unmodified object, as if a query had loaded it
(``make_transient_to_detached`` then ``add``, SQLAlchemy's documented way to
put an object read elsewhere into a session). The view may change and commit
it; relationships and deferred columns load on access as usual. Nothing is
kept between requests: the values are the row as the check read it.

Mappers this cannot fill as a query would (inheritance or a polymorphic
identity, SQL expressions mapped as attributes, composites, ``load`` event
listeners) keep the ORM load: :attr:`RowUser.columns` is empty and
:attr:`RowUser.reason` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached


def unbuildable(mapper: Any) -> str | None:
    """Why instances of ``mapper`` cannot be filled from its table's columns; None if they can."""
    if mapper.inherits is not None or mapper.polymorphic_on is not None or mapper.polymorphic_map:
        return "inheritance or a polymorphic identity"
    if mapper.composites:
        return "composite attributes"
    for prop in mapper.column_attrs:
        columns = prop.columns
        if len(columns) != 1 or not isinstance(columns[0], sa.Column) or columns[0].table is not mapper.local_table:
            return f"{prop.key!r} is not a plain column of {mapper.local_table.name!r}"
    dispatch = mapper.class_manager.dispatch
    if dispatch.load or dispatch.refresh:
        return "load or refresh event listeners"
    return None


class RowUser:
    """Builds instances of ``model`` from the values of :attr:`columns`."""

    def __init__(self, db: Any, model: Any) -> None:
        self.db = db
        self.mapper = sa.inspect(model)
        #: Why the ORM load is kept; None when rows are used.
        self.reason = unbuildable(self.mapper)
        props = [] if self.reason else [p for p in self.mapper.column_attrs if not p.deferred]
        #: The user table's columns to read (deferred ones stay unloaded until read); empty: not used.
        self.columns: tuple[sa.Column, ...] = tuple(p.columns[0] for p in props)
        self.keys = tuple(p.key for p in props)
        pk = self.mapper.primary_key
        self._pk_index = self.columns.index(pk[0]) if len(pk) == 1 and pk[0] in self.columns else -1
        if self.columns and self._pk_index < 0:
            self.reason, self.columns, self.keys = "no single-column primary key", (), ()
        self._processors: list[tuple[int, Callable[[Any], Any]]] | None = None

    def _processors_for(self, dialect: Any) -> list[tuple[int, Callable[[Any], Any]]]:
        if self._processors is None:
            found: list[tuple[int, Callable[[Any], Any]]] = []
            for index, column in enumerate(self.columns):
                process: Any = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    found.append((index, process))
            self._processors = found
        return self._processors

    def _process(self, values: Sequence[Any], dialect: Any) -> list[Any]:
        """Driver values to Python values, by the columns' own types (as a query would)."""
        processed = list(values)
        for index, process in self._processors_for(dialect):
            processed[index] = process(processed[index])
        return processed

    def build(self, values: Sequence[Any], dialect: Any) -> Any:
        """The user whose row holds ``values`` (driver values, in :attr:`columns`
        order), in the host's current session. One the session already holds
        is returned as it is, as ``session.get`` would."""
        processed = self._process(values, dialect)
        session = self.db.session()
        key = self.mapper.identity_key_from_primary_key((processed[self._pk_index],))
        found = session.identity_map.get(key)
        if found is not None:
            return found
        user = self.mapper.class_manager.new_instance()
        sa.orm.attributes.instance_state(user).dict.update(zip(self.keys, processed, strict=True))
        make_transient_to_detached(user)
        session.add(user)
        return user
