"""Requests per second across processes: the demo under gunicorn, driven by wrk.

    .venv-bench/bin/python bench/throughput.py [--postgres URL] [--workers 4] [--seconds 8] [--rounds 5]

The demo (``example_app``) runs under gunicorn with sync workers on PostgreSQL,
with two routes added for the measurement on the same app: ``/bench/open``
(no check) and ``/bench/protected`` (``token_required``), both answering the
same JSON (rate limits raised for the password route's measurement); the
demo's own ``/api/data`` (which also reads ``current_user``) is measured too, and is the verdict's route.
``wrk`` runs on loopback; the routes are driven in turn, round by round; the
verdict is the median of per-round ratios. Then tokens issued per second
through ``POST /api/authenticate/userpass``, and, in this process, what one issue costs split into the password hash and
the extension's share (user lookup and token row).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
SECRET_KEY = "bench throughput secret key, long enough"
PASSWORD = "bench-password-1"

WSGI_MODULE = '''
from flask import jsonify
from example_app import create_app, _data
from flask_apitokens import token_required

app = create_app()


@app.get("/bench/open")
def bench_open():
    return jsonify(items=_data())


@app.get("/bench/protected")
@token_required(scopes=["data:read"])
def bench_protected():
    return jsonify(items=_data())
'''

POST_LUA = '''
wrk.method = "POST"
wrk.body = '{"username": "bench", "password": "PASSWORD", "scopes": ["data:read"]}'
wrk.headers["Content-Type"] = "application/json"
'''.replace("PASSWORD", PASSWORD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(url: str) -> str:
    """Fresh demo tables, a user and a token; returns the token."""
    os.environ.update(EXAMPLE_DATABASE_URL=url, FLASK_SECRET_KEY=SECRET_KEY)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS apitokens_identity, apitokens_token, users CASCADE")
    engine.dispose()
    from example_app import create_app
    from example_app.models import User, db

    app = create_app()
    with app.app_context():
        user = User(username="bench", email="bench@example.com")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        token = app.extensions["apitokens"].service.issue(user, via="cli", scopes=["data:read"]).token
        db.engine.dispose()
    return token


def issue_split(url: str, rounds: int = 5) -> tuple[float, float]:
    """Seconds of one password-route issue spent in the password hash, and in the rest
    of the extension (user lookup, token row insert and commit), measured in process."""
    from werkzeug.security import check_password_hash

    from example_app import create_app
    from example_app.models import User, db

    app = create_app()
    with app.app_context():
        stored = db.session.execute(db.select(User.password_hash)).scalar_one()
        hashing = []
        for _ in range(rounds):
            started = time.perf_counter()
            check_password_hash(stored, PASSWORD)
            hashing.append(time.perf_counter() - started)
        user = db.session.execute(db.select(User)).scalar_one()
        service = app.extensions["apitokens"].service
        rest = []
        for _ in range(rounds * 4):
            started = time.perf_counter()
            db.session.expire_all()
            found = app.extensions["apitokens"].users.find_by_login("bench")
            service.issue(found, via="userpass", scopes=["data:read"])
            rest.append(time.perf_counter() - started)
        assert user is not None
        db.engine.dispose()
    return statistics.median(hashing), statistics.median(rest)


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str], script: str | None = None) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    latency = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    return {"rate": rate, "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else "",
            "p50": latency.group(1) if latency else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    sys.path.insert(0, str(ROOT))
    gunicorn = Path(sys.executable).with_name("gunicorn")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; gunicorn {args.workers} sync workers, "
          f"wrk -t2 -c{args.connections} -d{args.seconds}s on loopback; {args.postgres}")
    with tempfile.TemporaryDirectory(prefix="apitokens-throughput-") as workdir:
        token = prepare(args.postgres)
        (Path(workdir) / "bench_wsgi.py").write_text(WSGI_MODULE)
        (Path(workdir) / "post.lua").write_text(POST_LUA)
        port = free_port()
        # The password route is measured for what issuing costs, not for its
        # rate limits (30 a minute per address): they are raised out of the way.
        env = {**os.environ, "PYTHONPATH": f"{workdir}:{ROOT}", "EXAMPLE_DATABASE_URL": args.postgres,
               "FLASK_SECRET_KEY": SECRET_KEY, "FLASK_APITOKENS_RATE_LIMIT": "1000000/minute",
               "FLASK_APITOKENS_ACCOUNT_RATE_LIMIT": "1000000/minute"}
        server = subprocess.Popen(
            [str(gunicorn), "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
             "bench_wsgi:app"], cwd=workdir, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            auth = {"Authorization": f"token {token}"}
            routes = {"/bench/open (unprotected)": ("/bench/open", {}),
                      "/bench/protected (token_required)": ("/bench/protected", auth),
                      "/api/data (token_required + current_user)": ("/api/data", auth)}
            for path, headers in routes.values():  # warm every worker
                wrk(base + path, 2, args.connections, headers)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in routes}
            for _ in range(args.rounds):
                for name, (path, headers) in routes.items():
                    results[name].append(wrk(base + path, args.seconds, args.connections, headers))
            print(f"\n{'route':44} {'req/s median':>12}  rounds (req/s)                 p50 latency  non-2xx")
            rates = {}
            for name, runs in results.items():
                rates[name] = statistics.median(r["rate"] for r in runs)
                each = ", ".join(f"{r['rate']:.0f}" for r in runs)
                print(f"{name:44} {rates[name]:12.0f}  {each:30} "
                      f"{runs[0]['p50']:>10}  {sum(r['non2xx'] for r in runs)}")
            # The median of per-round ratios: the two routes of one round ran
            # seconds apart, so a slow spell of the shared machine cancels out.
            def per_round(name: str) -> tuple[float, float]:
                """(median of per-round ratios to the unprotected route, ratio of the medians)."""
                paired = statistics.median(p["rate"] / o["rate"] for p, o in zip(
                    results[name], results["/bench/open (unprotected)"], strict=True))
                return paired, rates[name] / rates["/bench/open (unprotected)"]

            # Issue 18's target: a protected route that reads current_user.
            user, user_medians = per_round("/api/data (token_required + current_user)")
            print(f"\ntoken-protected + current_user / unprotected, same app, same round: {user:.0%} "
                  f"[of the medians: {user_medians:.0%}] (target >= 60%) -> {'MET' if user >= 0.6 else 'MISSED'}")
            protected, of_medians = per_round("/bench/protected (token_required)")
            print(f"(info) token-protected, no current_user / unprotected: {protected:.0%} [of the medians: "
                  f"{of_medians:.0%}]")
            issued = wrk(base + "/api/authenticate/userpass", args.seconds, 4, {}, str(Path(workdir) / "post.lua"))
            print(f"\nPOST /api/authenticate/userpass: {issued['rate']:.1f} tokens/s issued "
                  f"(p50 {issued['p50']}, non-2xx {issued['non2xx']})")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
        hashing, rest = issue_split(args.postgres)
        total = hashing + rest
        print(f"one issue in process: password hash {hashing * 1e3:.1f} ms ({hashing / total:.0%}), the extension's "
              f"share (user lookup, token row insert + commit) {rest * 1e3:.2f} ms ({rest / total:.0%})")
        print(json.dumps({"protected_over_open": round(protected, 3)}))


if __name__ == "__main__":
    main()
