"""Where the extension's cost in a request goes, layer by layer (SQLite).

    .venv-bench/bin/python bench/layers.py [--rounds N]

One host app, five routes called in turn through WSGI, thread CPU time per
request: unprotected; a floor for any database check (the header read, one
``SELECT`` of the digest on a kept sqlite3 connection, a SHA-256 compared in
constant time: nothing else); a view that runs only the extension's lookup
statement; a view that calls ``TokenService.authenticate``; the route under
``token_required``; the same with a view that only opens the host's
``db.session`` (what any view using the ORM pays, a share of the next line);
and with a view that reads ``current_user``.
Then the verdict: what ``token_required`` adds over host-open, as a multiple
of what the floor adds (target <= 1.5), from the medians and as the median of
the per-round ratios.

Last, the two statements alone, outside any request, on one sqlite3 cursor
in a hot loop: the floor's ``SELECT digest`` and the check's lookup as
compiled (the token's columns for ``current_token``, revocation, expiry and
last-used decided by the database's clock, the owner's row for
``current_user``). Their difference is a share of the check's cost that no
Python can remove.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import jsonify
from werkzeug.test import EnvironBuilder

from flask_apitokens import token_required

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apps  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="apitokens-layers-") as workdir:
        app = apps.host_app(f"sqlite:///{workdir}/host.sqlite3", "layers")
        user = apps.host_reset(app)
        with app.app_context():
            service = app.extensions["apitokens"].service
            token = service.issue(user, via="cli").token
        public_id = token.split(":")[0][-12:]

        floor_connection = apps.add_floor_route(app, f"{workdir}/host.sqlite3", token)

        @app.get("/lookup-only")
        def lookup_only() -> Any:
            service._statements()[0].first({"tid": public_id})
            return jsonify(ok=True)

        @app.get("/authenticate-only")
        def authenticate_only() -> Any:
            service.authenticate(token, scheme="token", ip="127.0.0.1")
            return jsonify(ok=True)

        @app.get("/session-only")
        @token_required
        def session_only() -> Any:
            apps.host_db.session()  # what reading current_user pays before it builds anything
            return jsonify(ok=True)

        def environ(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
            return EnvironBuilder(path=path, headers=headers or {},
                                  environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()

        routes = {
            "unprotected (host-open)": environ("/open"),
            "floor: SELECT + SHA-256": environ("/floor", {"Authorization": f"token {token}"}),
            "+ the lookup statement only": environ("/lookup-only"),
            "+ TokenService.authenticate": environ("/authenticate-only"),
            "token_required (all of it)": environ("/r", {"Authorization": f"token {token}"}),
            "token_required, view opens session": environ("/session-only", {"Authorization": f"token {token}"}),
            "token_required, view reads user": environ("/user", {"Authorization": f"token {token}"}),
        }

        def run(env: dict[str, Any]) -> float:
            started = time.thread_time()
            for _ in range(args.batch):
                body = app(env.copy(), lambda status, headers, exc_info=None: None)
                for _chunk in body:
                    pass
                body.close()
            return (time.thread_time() - started) / args.batch * 1e6

        samples: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(args.rounds):
            for name, env in routes.items():
                samples[name].append(run(env))
        base = statistics.median(samples["unprotected (host-open)"])
        print(f"{'route':36} {'cpu µs median':>14} {'min':>8} {'over host-open':>15}")
        floor_connection.close()
        for name, values in samples.items():
            median = statistics.median(values)
            print(f"{name:36} {median:14.1f} {min(values):8.1f} {median - base:+15.1f}")
        open_, floor, check = (samples[name] for name in ("unprotected (host-open)", "floor: SELECT + SHA-256",
                                                            "token_required (all of it)"))
        of_medians = (statistics.median(check) - base) / (statistics.median(floor) - base)
        per_round = statistics.median((c - o) / (f - o) for o, f, c in zip(open_, floor, check, strict=True)
                                      if f > o)
        verdict = "MET" if per_round <= 1.5 else "MISSED"
        print(f"\n{verdict}: token_required adds {per_round:.2f}x (per round) [{of_medians:.2f}x from the medians] "
              "what the floor adds over host-open (target <= 1.5)")
        statements_alone(f"{workdir}/host.sqlite3", service._statements()[0].sql, public_id, args.rounds)


def statements_alone(database_path: str, lookup_sql: str, public_id: str, rounds: int) -> None:
    """The floor's statement and the check's lookup on one kept sqlite3 cursor
    (hot loop, CPU µs per statement, interleaved rounds)."""
    connection = sqlite3.connect(database_path, isolation_level=None)
    cursor = connection.cursor()
    statements = {"floor: SELECT digest": apps.FLOOR_SQL, "the check's lookup": lookup_sql}
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(rounds):
        for name in random.sample(list(statements), len(statements)):
            sql = statements[name]
            started = time.thread_time()
            for _ in range(500):
                cursor.execute(sql, (public_id,)).fetchone()
            samples[name].append((time.thread_time() - started) / 500 * 1e6)
    connection.close()
    floor, lookup = (statistics.median(samples[name]) for name in statements)
    print(f"\nThe statements alone (one sqlite3 cursor, hot loop): the floor's {floor:.1f} µs, the check's lookup "
          f"{lookup:.1f} µs ({lookup / floor:.1f}x, +{lookup - floor:.1f} µs)")


if __name__ == "__main__":
    main()
