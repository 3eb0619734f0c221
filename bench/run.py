"""What a protected GET costs with each way of checking a token, in one process.

    .venv-bench/bin/python bench/run.py [--postgres URL] [--rounds N] [--million N]
    .venv-bench/bin/python bench/run.py --profile "ext token sqlite"

Every contender is called straight through WSGI (no server, no sockets but the
database's). Contenders are interleaved round by round (in a shuffled order
each round), so a slow spell of the machine hits them all alike; each round
times a batch of calls per contender, and the report gives the median of the
per-call means over the rounds, their spread (25th-75th percentile), and the
ratio to the bare route. Every call's status is checked (200 accepted, 401 refused).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apps  # noqa: E402

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
PACKAGES = ("flask", "werkzeug", "sqlalchemy", "flask-sqlalchemy", "flask-login", "flask-httpauth",
            "flask-jwt-extended", "pyjwt", "flask-security-too", "joserfc", "psycopg", "flask-apitokens")


class Runner:
    """A contender made ready to be called many times."""

    def __init__(self, call: apps.Call) -> None:
        self.call = call
        builder = EnvironBuilder(path=call.path, headers=call.headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        self.environ = builder.get_environ()
        self.statuses: set[str] = set()
        self.samples: list[float] = []
        self.cpu: list[float] = []
        self.batch = 50
        #: SQL statements and (on PostgreSQL) transactions per call, from the counting pass.
        self.statements: float | None = None
        self.transactions: float | None = None

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        self.statuses.add(status)
        return lambda data: None

    def once(self) -> bytes:
        body = self.call.app(dict(self.environ), self.start_response)
        try:
            return b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()

    def timed(self, count: int) -> float:
        """Seconds per call over ``count`` calls."""
        app, environ, start_response = self.call.app, self.environ, self.start_response
        started, cpu = time.perf_counter(), time.thread_time()
        for _ in range(count):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        self.last_cpu = (time.thread_time() - cpu) / count
        return (time.perf_counter() - started) / count

    def check(self) -> None:
        expected = {"200": "200 OK", "401": "401 UNAUTHORIZED"}[str(self.call.status)]
        if self.statuses != {expected}:
            raise SystemExit(f"{self.call.name}: answered {sorted(self.statuses)}, expected {expected}: "
                             f"{self.once()[:300]!r}")


def versions(postgres: str | None) -> list[str]:
    lines = [f"python {platform.python_version()} ({platform.python_implementation()}), "
             f"sqlite {sqlite3.sqlite_version}"]
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    lines.append(", ".join(found))
    try:
        revision = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
                                  capture_output=True, text=True, check=False).stdout.strip()
        import flask_apitokens

        lines.append(f"flask-apitokens at {revision} ({Path(flask_apitokens.__file__).parent})")
    except OSError:
        pass
    if postgres:
        import sqlalchemy as sa

        engine = sa.create_engine(postgres)
        with engine.connect() as conn:
            lines.append(conn.execute(sa.text("select version()")).scalar_one().split(",")[0])
        engine.dispose()
    return lines


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {model}, load {os.getloadavg()[0]:.2f}"


def build(args: argparse.Namespace, workdir: str) -> list[apps.Call]:
    user_token = apps.user_token_available()
    if not user_token:
        print("NOTE: flask_apitokens.methods.user_token is missing: the user-token JWT contenders are skipped.")
    calls = apps.bare_app() + apps.httpauth_dict_app() + apps.jwt_extended_app()
    calls += apps.handwritten_app(f"sqlite:///{workdir}/handwritten.sqlite3", "sqlite")
    calls += apps.flask_security_app(f"sqlite:///{workdir}/flask_security.sqlite3", "sqlite")
    calls += apps.jwt_blocklist_app(f"sqlite:///{workdir}/jwt_blocklist.sqlite3", "sqlite")
    calls += apps.jwt_user_app(f"sqlite:///{workdir}/jwt_user.sqlite3", "sqlite")
    calls += apps.host_calls(f"sqlite:///{workdir}/host.sqlite3", "sqlite", user_token=user_token)
    calls += apps.plain_host_calls(f"sqlite:///{workdir}/host_plain.sqlite3")
    calls += apps.wal_calls(f"sqlite:///{workdir}/host_wal.sqlite3")
    if args.postgres:
        calls += apps.handwritten_app(args.postgres, "postgres")
        calls += apps.jwt_blocklist_app(args.postgres, "postgres")
        calls += apps.jwt_user_app(args.postgres, "postgres")
        calls += apps.host_calls(args.postgres, "postgres", user_token=user_token)
    if args.million:
        started = time.perf_counter()
        calls += apps.table_size_calls(workdir, (1000, args.million))
        print(f"(filled the token tables of 1,000 and {args.million:,} rows in {time.perf_counter() - started:.1f} s)")
    return calls


def calibrate(runners: list[Runner], target: float) -> None:
    for runner in runners:
        runner.timed(20)  # warm up caches, prepared statements, pools
        per_call = runner.timed(20)
        runner.batch = max(10, int(target / per_call))
        runner.check()


def measure(runners: list[Runner], rounds: int) -> None:
    order = list(runners)
    shuffle = random.Random(1234).shuffle
    for number in range(rounds):
        shuffle(order)
        gc.collect()
        for runner in order:
            runner.samples.append(runner.timed(runner.batch))
            runner.cpu.append(runner.last_cpu)
        print(f"\r  round {number + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    for runner in runners:
        runner.check()


def count_statements(runners: list[Runner], calls: int = 20) -> None:
    """A separate pass, after the timed rounds (its listeners would slow them):
    SQL statements per call, as SQLAlchemy's ``before_cursor_execute`` sees
    them on every engine (plus the floor's own sqlite3 connection, traced),
    and transactions SQLAlchemy began outside autocommit on PostgreSQL, each
    a ``BEGIN`` and a ``COMMIT``/``ROLLBACK`` round trip more. (Under a
    listener the extension's check runs through Core, with the same one
    statement; on SQLite a read opens no transaction, so none are counted.)"""
    import sqlalchemy as sa

    counts = {"statements": 0, "transactions": 0}

    def statement(*args: Any) -> None:
        counts["statements"] += 1

    def traced(sql: str) -> None:
        counts["statements"] += 1

    def begun(conn: Any) -> None:
        if conn.engine.dialect.name != "sqlite" and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            counts["transactions"] += 1

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", statement)
    sa.event.listen(sa.engine.Engine, "begin", begun)
    try:
        for runner in runners:
            for connection in runner.call.raw_connections:
                connection.set_trace_callback(traced)
            runner.once()
            counts.update(statements=0, transactions=0)
            for _ in range(calls):
                runner.once()
            runner.statements = counts["statements"] / calls
            runner.transactions = counts["transactions"] / calls
            for connection in runner.call.raw_connections:
                connection.set_trace_callback(None)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", statement)
        sa.event.remove(sa.engine.Engine, "begin", begun)


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, median, q3


def report(runners: list[Runner]) -> dict[str, float]:
    medians = {r.call.name: quartiles(r.samples)[1] for r in runners}
    floor = medians["bare"]
    print(f"\n{'contender':42} {'median µs':>10} {'p25-p75 µs':>16} {'min µs':>8} {'x bare':>7} "
          f"{'cpu µs':>8} {'cpu x':>6} {'SQL':>4} {'tx':>4} {'batch':>6} status")
    cpu_floor = statistics.median(runners[0].cpu)

    def per_call(value: float | None) -> str:
        return "-" if value is None else f"{value:.2g}"

    for runner in runners:
        q1, median, q3 = quartiles(runner.samples)
        print(f"{runner.call.name:42} {median * 1e6:10.1f} {f'{q1 * 1e6:.1f}-{q3 * 1e6:.1f}':>16} "
              f"{min(runner.samples) * 1e6:8.1f} {median / floor:7.2f} {statistics.median(runner.cpu) * 1e6:8.1f} "
              f"{statistics.median(runner.cpu) / cpu_floor:6.2f} {per_call(runner.statements):>4} "
              f"{per_call(runner.transactions) if runner.call.group == 'postgres' else '-':>4} "
              f"{runner.batch:6d} {runner.call.status}")
    print("(SQL: statements per call; tx: transactions per call on PostgreSQL, each a BEGIN and a ROLLBACK/COMMIT "
          "round trip more; both from a separate counting pass)")
    return medians


def targets(runners: list[Runner]) -> list[dict[str, Any]]:
    """Each target as the median over rounds of a per-round ratio (the
    contenders of one round ran within a second of each other, so a slow
    spell of the shared machine cancels out), and as the ratio of medians.
    Returns them (for ``--json``) as well as printing them."""
    by_name = {r.call.name: r.samples for r in runners}
    runner_by_name = {r.call.name: r for r in runners}
    bare = by_name["bare"]
    found: list[dict[str, Any]] = []

    def ratio(expression: Callable[[Callable[[str], float]], float]) -> tuple[float, float]:
        """(median over rounds, value from the medians) of ``expression(get)``."""
        paired = statistics.median(expression(lambda name, i=i: by_name[name][i]) for i in range(len(bare)))
        medians = {name: statistics.median(samples) for name, samples in by_name.items()}
        return paired, expression(lambda name: medians[name])

    def show(ok: bool | None, text: str, value: float | None = None, limit: float | None = None) -> None:
        label = "(info)" if ok is None else "MET   " if ok else "MISSED"
        print(f"  {label} {text}")
        found.append({"text": text, "met": ok, "value": value, "limit": limit})

    print("\nTargets (median over rounds of the per-round ratio; in brackets, from the medians above):")
    have = by_name.keys()
    for label in ("sqlite", "postgres"):
        name = f"ext token {label} +user"
        if name in have and runner_by_name[name].statements is not None:
            r = runner_by_name[name]
            ok = r.statements == 1 and (label == "sqlite" or r.transactions == 0)
            show(ok, f"{name}: {r.statements:g} SQL statement(s) and {r.transactions:g} transaction(s) per accepted "
                     "request (target: one statement, no transaction)", r.statements, 1)
    for label, limit in (("sqlite", 0.45), ("postgres", 0.40)):
        ours, theirs = f"ext token {label} +user", f"jwt-extended +user {label}"
        if {ours, theirs} <= have:
            rel = ratio(lambda v, o=ours, t=theirs: v(o) / v(t))
            show(rel[0] <= limit, f"{ours} costs {rel[0]:.2f} [{rel[1]:.2f}] of {theirs} (target <= {limit})",
                 rel[0], limit)
    if {"ext token sqlite", "host-open sqlite", "floor sqlite"} <= have:
        rel = ratio(lambda v: (v("ext token sqlite") - v("host-open sqlite"))
                    / (v("floor sqlite") - v("host-open sqlite")))
        show(rel[0] <= 1.5, f"SQLite: what the check adds to host-open is {rel[0]:.2f}x [{rel[1]:.2f}x] what the floor "
                            "(one SELECT, a SHA-256) adds (target <= 1.5; bench/layers.py measures it in CPU time)",
             rel[0], 1.5)
    if {"ext token sqlite", "host-open sqlite"} <= have:
        added = ratio(lambda v: (v("ext token sqlite") - v("host-open sqlite")) / v("bare"))
        show(None, f"SQLite: the extension adds {added[0]:.2f}x [{added[1]:.2f}x] of the bare route to host-open",
             added[0])
    if {"floor sqlite", "host-open sqlite"} <= have:
        floor = ratio(lambda v: (v("floor sqlite") - v("host-open sqlite")) / v("bare"))
        show(None, f"SQLite: a floor for any database check (one SELECT, a SHA-256) adds {floor[0]:.2f}x "
                   f"[{floor[1]:.2f}x] of the bare route to host-open", floor[0])
    if {"host-open sqlite", "host-plain sqlite"} <= have:
        unprotected = ratio(lambda v: (v("host-open sqlite") - v("host-plain sqlite")) / v("bare"))
        show(None, f"SQLite: the extension adds {unprotected[0]:.2f}x [{unprotected[1]:.2f}x] of the bare route "
                   "to a host route it does not protect", unprotected[0])
    if {"ext token sqlite-wal", "host-open sqlite-wal"} <= have:
        wal = ratio(lambda v: (v("ext token sqlite-wal") - v("host-open sqlite-wal")) / v("bare"))
        show(None, f"SQLite in WAL mode: the extension adds {wal[0]:.2f}x [{wal[1]:.2f}x] of the bare route "
                   "to host-open", wal[0])
    if {"ext token sqlite", "jwt-extended"} <= have:
        rel = ratio(lambda v: v("ext token sqlite") / v("jwt-extended"))
        show(rel[0] < 1, f"SQLite: ext token costs {rel[0]:.2f} [{rel[1]:.2f}] of jwt-extended (target < 1)", rel[0], 1)
    for refused in ("ext token sqlite refused (secret)", "ext token sqlite refused (checksum)",
                    "ext key sqlite refused (secret)", "ext token postgres refused (secret)",
                    "ext key postgres refused (secret)"):
        accepted = refused.split(" refused")[0]
        if {refused, accepted} <= have:
            rel = ratio(lambda v, a=accepted, r=refused: v(r) / v(a))
            show(rel[0] <= 1, f"{refused} costs {rel[0]:.2f} [{rel[1]:.2f}] of accepted (target <= 1)", rel[0], 1)
    sizes = sorted((n for n in have if n.endswith(" tokens")), key=lambda n: int(n.split()[3].replace(",", "")))
    if len(sizes) == 2:
        rel = ratio(lambda v: v(sizes[1]) / v(sizes[0]))
        show(rel[0] <= 1.10, f"SQLite: {sizes[1]} costs {rel[0]:.3f} [{rel[1]:.3f}] of {sizes[0]} (target <= 1.10)",
             rel[0], 1.10)
    if {"ext token postgres", "host-open postgres", "handwritten postgres"} <= have:
        rel = ratio(lambda v: (v("ext token postgres") - v("host-open postgres"))
                    / (v("handwritten postgres") - v("bare")))
        show(rel[0] <= 1 / 3, f"PostgreSQL: what the extension adds is {rel[0]:.2f} [{rel[1]:.2f}] of what the "
                              "hand-written check adds to the bare route (target <= 0.33)", rel[0], 1 / 3)
    for label in ("sqlite", "postgres"):
        name = f"ext user-token {label}"
        blocklist = f"jwt-extended +blocklist {label}"
        if {name, blocklist} <= have:
            rel = ratio(lambda v, n=name, b=blocklist: v(n) / v(b))
            show(rel[0] <= 0.35, f"{name} costs {rel[0]:.2f} [{rel[1]:.2f}] of {blocklist} (Flask-JWT-Extended with "
                                 "its documented revocation check; target <= 0.35)", rel[0], 0.35)
        if {name, "jwt-extended"} <= have:
            rel = ratio(lambda v, n=name: v(n) / v("jwt-extended"))
            show(None, f"{name} costs {rel[0]:.2f} [{rel[1]:.2f}] of jwt-extended (no revocation check)", rel[0])
    if not any(n.startswith("ext user-token") for n in have) and not apps.user_token_available():
        print("  (user-token targets not measured: flask_apitokens.methods.user_token is missing)")
    return found


def write_json(path: str, runners: list[Runner], verdicts: list[dict[str, Any]], header: list[str]) -> None:
    """The run's figures, for ``bench/chart.py`` (and for comparing runs)."""
    import json

    bare = statistics.median(runners[0].samples)
    rows = []
    for runner in runners:
        q1, median, q3 = quartiles(runner.samples)
        rows.append({"name": runner.call.name, "group": runner.call.group, "status": runner.call.status,
                     "median_us": median * 1e6, "p25_us": q1 * 1e6, "p75_us": q3 * 1e6,
                     "min_us": min(runner.samples) * 1e6, "x_bare": median / bare,
                     "cpu_us": statistics.median(runner.cpu) * 1e6, "statements": runner.statements,
                     "transactions": runner.transactions if runner.call.group == "postgres" else None,
                     "rounds": len(runner.samples)})
    Path(path).write_text(json.dumps({"header": header, "contenders": rows, "targets": verdicts}, indent=1) + "\n")
    print(f"figures written to {path}")


def profile(calls: list[apps.Call], name: str, seconds: float) -> None:
    from pyinstrument import Profiler

    runner = Runner(next(c for c in calls if c.name == name))
    runner.timed(200)
    runner.check()
    profiler = Profiler(interval=0.0001)
    count = 0
    profiler.start()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        runner.timed(50)
        count += 50
    profiler.stop()
    print(f"{name}: {count} calls")
    print(profiler.output_text(unicode=True, color=False, show_all=bool(os.environ.get("BENCH_PROFILE_ALL"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a database the run may fill ('' to skip)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch-seconds", type=float, default=0.02, help="time per contender per round")
    parser.add_argument("--million", type=int, default=1_000_000, help="the big token table's size (0 to skip)")
    parser.add_argument("--only", default="",
                        help="only contenders whose name contains one of these, comma-separated (and bare)")
    parser.add_argument("--profile", default="", help="profile this contender with pyinstrument instead")
    parser.add_argument("--json", default="", help="also write the figures to this file (for bench/chart.py)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    header = [f"machine: {machine()}", *versions(args.postgres),
              "command: " + " ".join([Path(sys.executable).name, *sys.argv])]
    for line in header:
        print(line)
    with tempfile.TemporaryDirectory(prefix="apitokens-bench-") as workdir:
        calls = build(args, workdir)
        if args.profile:
            profile(calls, args.profile, 5.0)
            return
        if args.only:
            wanted = args.only.split(",")
            calls = [c for c in calls if c.name == "bare" or any(w in c.name for w in wanted)]
        runners = [Runner(call) for call in calls]
        calibrate(runners, args.batch_seconds)
        gc.freeze()
        started = time.perf_counter()
        measure(runners, args.rounds)
        print(f"{len(runners)} contenders x {args.rounds} rounds in {time.perf_counter() - started:.0f} s; "
              f"every call answered its expected status")
        count_statements(runners)
        report(runners)
        verdicts = targets(runners)
        if args.json:
            write_json(args.json, runners, verdicts, header)


if __name__ == "__main__":
    main()
