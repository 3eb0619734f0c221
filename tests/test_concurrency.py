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

from tests.conftest import POSTGRES_URL, need, need_module
from tests.test_ratelimit import REDIS_URL

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


@pytest.fixture
def gunicorn_demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``gunicorn -w 4`` serving the demo; yields (base URL, database URL)."""
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL to a PostgreSQL database for the concurrency test")
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
    if gunicorn is None:
        need("install gunicorn (the test extra) for the concurrency test")
    redis = need_module("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        need(f"run Redis at {REDIS_URL} (or set APITOKENS_TEST_REDIS_URL) for the concurrency test")
    prepare_database(POSTGRES_URL)
    port = free_port()
    env = {
        **os.environ,
        "EXAMPLE_DATABASE_URL": POSTGRES_URL,
        "FLASK_SECRET_KEY": "concurrency test",
        "FLASK_RATELIMIT_STORAGE_URI": REDIS_URL,
        "FLASK_RATELIMIT_KEY_PREFIX": f"concurrency-{uuid.uuid4().hex}",  # no flush needed
        "FLASK_APITOKENS_RATE_LIMIT": "1000000/minute",
        "FLASK_APITOKENS_ACCOUNT_RATE_LIMIT": f"{ACCOUNT_LIMIT}/minute",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [gunicorn, "-w", "4", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "example_app:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/api/openapi.json", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base, POSTGRES_URL
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        drop_database_tables(POSTGRES_URL)


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
def test_four_workers_eight_threads(gunicorn_demo: tuple[str, str]) -> None:
    base, database_url = gunicorn_demo
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    issued: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        # No keep-alive session: every request is a new connection, so the kernel picks the worker.
        mine: collections.Counter[tuple[str, int]] = collections.Counter()
        tokens: list[str] = []
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
        with lock:
            statuses.update(mine)
            issued.extend(tokens)

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
