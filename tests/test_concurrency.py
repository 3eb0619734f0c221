"""The demo under gunicorn with 4 worker processes on PostgreSQL, 8 client
threads at once: tokens issued (userpass), used and revoked by the thousand.
Every token is unique, a revoked token is refused by every worker at once,
no write is lost, no 500; a rate limit holds across workers through Redis."""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from tests.helpers import POSTGRES_URL, need, need_redis

THREADS = 8
# One account per token, so the per-account limit can stay low. 1200 tokens x 7 requests
# take about a minute on 2 idle cores; APITOKENS_TEST_CONCURRENCY_TOKENS raises it.
TOKENS = int(os.environ.get("APITOKENS_TEST_CONCURRENCY_TOKENS", "1200"))
CHECKS_AFTER_REVOKE = 4
ACCOUNT_LIMIT = 5
FAST_HASH = "pbkdf2:sha256:1000"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_database(url: str) -> None:
    """Tables and users made once, before the workers start (four workers
    racing to CREATE TABLE would only test PostgreSQL's catalog)."""
    os.environ["EXAMPLE_DATABASE_URL"] = url
    try:
        from example_app import create_app
        from example_app.models import User, db

        app = create_app(SECRET_KEY="concurrency test", TESTING=True)
        with app.app_context():
            db.drop_all()
            db.create_all()
            password = generate_password_hash("pw-concurrent", method=FAST_HASH)
            db.session.execute(sa.insert(User), [
                {"username": f"u{i:05d}", "email": f"u{i:05d}@example.com", "password_hash": password,
                 "active": True, "is_admin": False} for i in range(TOKENS + 1)])
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
    finally:
        del os.environ["EXAMPLE_DATABASE_URL"]


def drop_database_tables(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("apitokens_identity", "apitokens_token", "users"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()


WORKERS = 4
# Each worker says who it is (a response header) once it has loaded the app, so
# the fixture can wait until every one of them answers before the clock starts.
GUNICORN_CONFIG = """\
def post_worker_init(worker):
    app, pid = worker.wsgi, str(worker.pid)

    def named(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("X-Worker", pid)], exc_info)
        return app(environ, start)

    worker.wsgi = named
    worker.log.info("worker %s ready", pid)
"""


class Demo:
    """The served demo: its URL, its database and what gunicorn and its workers logged."""

    def __init__(self, base: str, database_url: str, log_path: Path) -> None:
        self.base, self.database_url, self.log_path = base, database_url, log_path

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def __iter__(self) -> Iterator[str]:  # base, database_url = demo
        return iter((self.base, self.database_url))


def wait_for_workers(base: str, server: subprocess.Popen[bytes], log_path: Path, deadline: float) -> set[str]:
    """Until every worker has answered a request (new connections, so the
    kernel spreads them); fails with the workers' log if one never does."""
    seen: set[str] = set()
    while len(seen) < WORKERS:
        try:
            answer = requests.get(f"{base}/api/openapi.json", timeout=5)
            if answer.status_code == 200 and "X-Worker" in answer.headers:
                seen.add(answer.headers["X-Worker"])
                continue
        except requests.RequestException:
            pass  # not listening yet, or a worker still booting
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"gunicorn: {len(seen)} of {WORKERS} workers answered (exit status {server.poll()}):\n"
                        + log_path.read_text(errors="replace")[-4000:])
        time.sleep(0.05)
    return seen


@pytest.fixture
def gunicorn_demo(tmp_path: Path) -> Iterator[Demo]:
    """``gunicorn -w 4`` serving the demo, every worker answering; yields a
    :class:`Demo` (unpacks to base URL, database URL)."""
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL to a PostgreSQL database for the concurrency test")
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
    if gunicorn is None:
        need("install gunicorn (the test extra) for the concurrency test")
    redis_url = need_redis("for the concurrency test")
    prepare_database(POSTGRES_URL)
    port = free_port()
    env = {
        **os.environ,
        "EXAMPLE_DATABASE_URL": POSTGRES_URL,
        "FLASK_SECRET_KEY": "concurrency test",
        "FLASK_RATELIMIT_STORAGE_URI": redis_url,
        "FLASK_RATELIMIT_KEY_PREFIX": f"concurrency-{uuid.uuid4().hex}",  # no flush needed
        "FLASK_APITOKENS_RATE_LIMIT": "1000000/minute",
        "FLASK_APITOKENS_ACCOUNT_RATE_LIMIT": f"{ACCOUNT_LIMIT}/minute",
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "gunicorn.log"
    config = tmp_path / "gunicorn_conf.py"
    config.write_text(GUNICORN_CONFIG)
    log = log_path.open("w")
    server = subprocess.Popen(
        [gunicorn, "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "-c", str(config),
         "--log-level", "info", "example_app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_workers(base, server, log_path, time.monotonic() + 60)
        yield Demo(base, POSTGRES_URL, log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        try:
            drop_database_tables(POSTGRES_URL)
        except Exception as error:  # noqa: BLE001 - said with what the workers logged
            pytest.fail(f"teardown: dropping the demo's tables failed ({type(error).__name__}: {error}); "
                        "gunicorn and its workers logged:\n" + log_path.read_text(errors="replace")[-4000:])


def token_counts(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sa.text("SELECT count(*) FROM apitokens_token")).scalar()
            revoked = conn.execute(
                sa.text("SELECT count(*) FROM apitokens_token WHERE revoked_at IS NOT NULL")).scalar()
            return int(total or 0), int(revoked or 0)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_four_workers_eight_threads(gunicorn_demo: Demo) -> None:
    try:
        four_workers_eight_threads(*gunicorn_demo)
    except Exception as failure:
        # What the workers logged (a crash, a timeout, a traceback) is most of the diagnosis.
        raise AssertionError(f"{type(failure).__name__}: {failure}\n--- gunicorn and its workers logged ---\n"
                             f"{gunicorn_demo.log()}") from failure


def four_workers_eight_threads(base: str, database_url: str) -> None:
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    issued: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        try:
            work(thread)
        except Exception as error:  # noqa: BLE001 - reported, not lost with the thread
            with lock:
                problems.append(f"thread {thread} stopped: {error!r}")

    def work(thread: int) -> None:
        # No keep-alive session: every request is a new connection, so the kernel picks the worker.
        mine: collections.Counter[tuple[str, int]] = collections.Counter()
        tokens: list[str] = []
        try:
            loop(thread, mine, tokens)
        finally:
            with lock:
                statuses.update(mine)
                issued.extend(tokens)

    def loop(thread: int, mine: collections.Counter[tuple[str, int]], tokens: list[str]) -> None:
        for n in range(thread, TOKENS, THREADS):
            username = f"u{n:05d}"
            response = requests.post(f"{base}/api/authenticate/userpass", timeout=30, data={
                "username": username, "password": "pw-concurrent", "scopes": "data:read tokens"})
            mine["issue", response.status_code] += 1
            if response.status_code != 200:
                problems.append(f"issue {username}: {response.status_code} {response.text[:200]}")
                continue
            token = response.json()["token"]
            tokens.append(token)
            headers = {"Authorization": f"token {token}"}
            used = requests.get(f"{base}/api/data", headers=headers, timeout=30)
            mine["use", used.status_code] += 1
            token_id = token.removeprefix("apt_").split(":")[0]
            revoked = requests.delete(f"{base}/api/tokens/{token_id}", headers=headers, timeout=30)
            mine["revoke", revoked.status_code] += 1
            if revoked.status_code != 200 or revoked.json() != {"revoked": [token_id]}:
                problems.append(f"revoke {token_id}: {revoked.status_code} {revoked.text[:200]}")
            for _ in range(CHECKS_AFTER_REVOKE):
                again = requests.get(f"{base}/api/data", headers=headers, timeout=30)
                mine["after revoke", again.status_code] += 1

    before = token_counts(database_url)
    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    served = sum(statuses.values())
    print(f"\nconcurrency: {served} requests in {elapsed:.1f} s ({served / elapsed:.0f}/s) by 4 workers "
          f"from {THREADS} threads; statuses {dict(sorted(statuses.items()))}")

    assert problems == []
    assert not [key for key in statuses if key[1] >= 500]
    assert statuses["issue", 200] == TOKENS
    assert statuses["use", 200] == TOKENS
    assert statuses["revoke", 200] == TOKENS
    assert statuses["after revoke", 401] == TOKENS * CHECKS_AFTER_REVOKE  # every worker refuses at once
    assert len(set(issued)) == len(issued) == TOKENS
    assert len({token.split(":")[0] for token in issued}) == TOKENS
    assert token_counts(database_url) == (before[0] + TOKENS, before[1] + TOKENS)  # no lost writes

    # One account, many wrong passwords at once: the limit holds across the four workers.
    def guess(_: int) -> int:
        return requests.post(f"{base}/api/authenticate/userpass", timeout=30,
                             data={"username": f"u{TOKENS:05d}", "password": "wrong"}).status_code

    guesses: list[int] = []
    guessers = [threading.Thread(target=lambda: guesses.extend(guess(i) for i in range(3))) for _ in range(THREADS)]
    for thread in guessers:
        thread.start()
    for thread in guessers:
        thread.join()
    print(f"rate limit across workers: {collections.Counter(guesses)}")
    assert collections.Counter(guesses) == {401: ACCOUNT_LIMIT, 429: 3 * THREADS - ACCOUNT_LIMIT}
