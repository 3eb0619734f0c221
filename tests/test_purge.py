"""``flask apitokens purge-expired`` on a large table (issue 15, item 9): it
deletes in batches, one transaction each, shows a progress bar on a terminal
and only the counts otherwise."""

from __future__ import annotations

import datetime as dt
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_apitokens.models import utcnow
from tests import hostapp
from tests.helpers import cli, token_rows

ROOT = Path(__file__).resolve().parent.parent
ROWS = 50_000


def fill(app: Flask, user: Any, *, expired: int, live: int, revoked: int = 0) -> None:
    """Insert rows with executemany, as a table grown over years would hold them."""
    T = app.extensions["apitokens"].models.Token
    now = utcnow()
    rows = []
    for number in range(expired + live + revoked):
        kind = "expired" if number < expired else "live" if number < expired + live else "revoked"
        rows.append({
            "id": f"{kind[0]}{number:015d}", "user_id": user.id, "kind": "token", "via": "cli", "name": "",
            "scopes": "", "digest": b"\0" * 32, "created_at": now - dt.timedelta(days=100),
            "expires_at": now - dt.timedelta(days=1) if kind == "expired" else now + dt.timedelta(days=30),
            "revoked_at": now - dt.timedelta(days=2) if kind == "revoked" else None,
        })
    hostapp.db.session.execute(sa.insert(T), rows)
    hostapp.db.session.commit()


def count(app: Flask) -> int:
    T = app.extensions["apitokens"].models.Token
    return int(hostapp.db.session.execute(sa.select(sa.func.count()).select_from(T)).scalar_one())


@pytest.mark.slow
def test_a_large_table_is_purged_in_batches(app: Flask, user: Any) -> None:
    fill(app, user, expired=ROWS, live=500, revoked=500)
    service = app.extensions["apitokens"].service
    assert service.count_purgeable() == ROWS + 500
    assert service.count_purgeable(revoked_older_than_days=30) == ROWS

    batches: list[int] = []
    commits: list[int] = []
    sa.event.listen(hostapp.db.session(), "after_commit", lambda session: commits.append(1))
    assert service.purge_expired(revoked_older_than_days=30, batch_size=1000, progress=batches.append) == ROWS
    assert batches == [1000] * (ROWS // 1000)
    assert len(commits) >= ROWS // 1000  # a transaction per batch, not one long lock
    rows = token_rows(app)
    assert len(rows) == 1000 and {row.id[0] for row in rows} == {"l", "r"}
    # Only what purgeable() allows went: a second run finds nothing, a run without the age takes the revoked.
    assert service.purge_expired(revoked_older_than_days=30, batch_size=1000) == 0
    assert service.purge_expired(batch_size=300) == 500
    assert count(app) == 500


def test_the_command_prints_counts_when_not_a_terminal(app: Flask, user: Any) -> None:
    fill(app, user, expired=2500, live=10)
    result = cli(app, "purge-expired", "--batch-size", "1000")
    assert result.exit_code == 0, result.output
    assert result.output == "purged: 2500  expiring-soon warnings sent: 0\n"
    assert count(app) == 10
    assert cli(app, "purge-expired", "--batch-size", "0").exit_code == 2


def test_the_command_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'purge.sqlite3'}"
    app = hostapp.create_app(url)
    with app.app_context():
        hostapp.db.create_all()
        fill(app, hostapp.make_user("alice"), expired=3000, live=5)
        hostapp.db.session.remove()
        hostapp.db.engine.dispose()
    env = {**os.environ, "FLASK_APP": f"tests.hostapp:create_app({url!r})", "PYTHONPATH": str(ROOT),
           "COLUMNS": "100"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "flask", "apitokens", "purge-expired", "--batch-size", "500"],
                               cwd=ROOT, env=env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "Purging" in text and "3000/3000" in text, text
    assert "purged: 3000  expiring-soon warnings sent: 0" in text
