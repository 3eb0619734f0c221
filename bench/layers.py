"""Where the extension's cost in a request goes, layer by layer (SQLite).

    .venv-bench/bin/python bench/layers.py [--rounds N]

One host app, five routes called in turn through WSGI, thread CPU time per
request: unprotected; a floor for any database check (the header read, one
``SELECT`` of the digest on a kept sqlite3 connection, a SHA-256 compared in
constant time: nothing else); a view that runs only the extension's lookup
statement; a view that calls ``TokenService.authenticate``; the route under
``token_required``; and the same with a view that reads ``current_user``.
Then the verdict: what ``token_required`` adds over host-open, as a multiple
of what the floor adds (target <= 1.5), from the medians and as the median of
the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import jsonify
from werkzeug.test import EnvironBuilder

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

        def environ(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
            return EnvironBuilder(path=path, headers=headers or {},
                                  environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()

        routes = {
            "unprotected (host-open)": environ("/open"),
            "floor: SELECT + SHA-256": environ("/floor", {"Authorization": f"token {token}"}),
            "+ the lookup statement only": environ("/lookup-only"),
            "+ TokenService.authenticate": environ("/authenticate-only"),
            "token_required (all of it)": environ("/r", {"Authorization": f"token {token}"}),
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
        print(f"{'route':30} {'cpu µs median':>14} {'min':>8} {'over host-open':>15}")
        floor_connection.close()
        for name, values in samples.items():
            median = statistics.median(values)
            print(f"{name:30} {median:14.1f} {min(values):8.1f} {median - base:+15.1f}")
        open_, floor, check = (samples[name] for name in ("unprotected (host-open)", "floor: SELECT + SHA-256",
                                                            "token_required (all of it)"))
        of_medians = (statistics.median(check) - base) / (statistics.median(floor) - base)
        per_round = statistics.median((c - o) / (f - o) for o, f, c in zip(open_, floor, check, strict=True)
                                      if f > o)
        verdict = "MET" if per_round <= 1.5 else "MISSED"
        print(f"\n{verdict}: token_required adds {per_round:.2f}x (per round) [{of_medians:.2f}x from the medians] "
              "what the floor adds over host-open (target <= 1.5)")


if __name__ == "__main__":
    main()
