"""Where a token is used: up to :data:`RECENT_USES` distinct client addresses
per token, each with its user agent and when it was last seen.

Written only when the token's last-used time is (at most once per
``APITOKENS_LAST_USED_INTERVAL``), by one statement: an upsert into one of the
token's five slots. An address already there keeps its slot; a new one takes
the next free slot, and once all five are taken, the slot of the address seen
longest ago. So there is never a delete, and never more than five rows.

Rows go with their token: a foreign key with ``ON DELETE CASCADE`` (and, for
SQLite without ``PRAGMA foreign_keys``, :func:`delete_gone` after a purge).
Revoking a token keeps them: where a leaked token was used is the audit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from .models import Models
from .tokeninfo import iso

RECENT_USES = 5
#: Longer user agents are cut (the column's width).
MAX_USER_AGENT = 200


def upsert_statement(models: Models, dialect_name: str) -> Any:
    """The one statement that records a use (binds: ``tid``, ``ip``, ``ua``, ``now``),
    or None for a database without ``INSERT ... ON CONFLICT`` (uses are then not recorded)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect_name)
    if insert is None:
        return None
    u = models.use_table
    tid = sa.bindparam("tid", type_=u.c.token_id.type)
    ip = sa.bindparam("ip", type_=u.c.ip.type)
    mine = u.c.token_id == tid
    taken = sa.select(sa.func.count()).select_from(u).where(mine).scalar_subquery()
    oldest = sa.select(sa.func.min(u.c.last_used_at)).where(mine).scalar_subquery()
    # Aggregates, not LIMIT, and a literal 5: the token store's statements bind names only.
    slot = sa.func.coalesce(
        # The address's own slot ("IS NOT DISTINCT FROM": an unknown address is one too) ...
        sa.select(sa.func.min(u.c.slot)).where(mine, u.c.ip.is_not_distinct_from(ip)).scalar_subquery(),
        # ... else the next free one (slots fill 0, 1, 2... and are never freed one by one) ...
        sa.case((taken < sa.literal_column(str(RECENT_USES)), taken)),
        # ... else the one seen longest ago.
        sa.select(sa.func.min(u.c.slot)).where(mine, u.c.last_used_at == oldest).scalar_subquery(),
    )
    now = sa.bindparam("now", type_=u.c.last_used_at.type)
    ua = sa.bindparam("ua", type_=u.c.user_agent.type)
    statement = insert(u).from_select(
        ["token_id", "slot", "ip", "user_agent", "last_used_at"],
        sa.select(tid, slot, ip, ua, now).where(sa.true()),  # SQLite: WHERE parts SELECT from ON CONFLICT
    )
    return statement.on_conflict_do_update(
        index_elements=[u.c.token_id, u.c.slot],
        set_={"ip": statement.excluded.ip, "user_agent": statement.excluded.user_agent,
              "last_used_at": statement.excluded.last_used_at},
    )


def values(token_id: str, now: dt.datetime, ip: str | None, user_agent: str | None) -> dict[str, Any]:
    """The statement's binds; the user agent cut to the column, without NUL."""
    if user_agent is not None:
        user_agent = user_agent.replace("\x00", "")[:MAX_USER_AGENT] or None
    return {"tid": token_id, "ip": ip, "ua": user_agent, "now": now}


def for_tokens(session: Any, models: Models, token_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """token id -> its recent uses, newest first: ``{"ip", "user_agent", "last_used_at"}``.
    One query for all the ids."""
    ids = list(token_ids)
    found: dict[str, list[dict[str, Any]]] = {token_id: [] for token_id in ids}
    if not ids:
        return found
    u = models.use_table
    rows = session.execute(
        sa.select(u.c.token_id, u.c.ip, u.c.user_agent, u.c.last_used_at)
        .where(u.c.token_id.in_(ids)).order_by(u.c.token_id, u.c.last_used_at.desc(), u.c.slot)
    )
    for token_id, ip, user_agent, last_used_at in rows:
        uses = found[token_id]
        # Two racing writers (APITOKENS_LAST_USED_INTERVAL = 0) can put one address in two slots.
        if all(use["ip"] != ip for use in uses):
            uses.append({"ip": ip, "user_agent": user_agent, "last_used_at": last_used_at})
    return found


def delete_gone(session: Any, models: Models, token_ids: list[str]) -> None:
    """The uses of those of ``token_ids`` that were just deleted, where the
    foreign key's cascade may not run (SQLite without ``PRAGMA foreign_keys``)."""
    if not token_ids or session.get_bind().dialect.name == "postgresql":
        return
    u, t = models.use_table, models.token_table
    session.execute(sa.delete(u).where(u.c.token_id.in_(token_ids), ~sa.exists().where(t.c.id == u.c.token_id)))


def to_json(uses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``recentUses`` of ``GET /api/tokens``."""
    return [{"ip": use["ip"], "userAgent": use["user_agent"], "lastUsedOn": iso(use["last_used_at"])}
            for use in uses]
