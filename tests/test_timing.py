"""No user enumeration by timing: on userpass, a wrong user and a wrong
password take the same time with werkzeug's DEFAULT password hash."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from tests import hostapp

TRIES = 200  # of each kind, interleaved


@pytest.mark.slow
def test_wrong_user_and_wrong_password_take_the_same_time(tmp_path: Any) -> None:
    # The host makes its hashes with werkzeug's default method, and says so (the dummy hash follows it).
    app = hostapp.create_app(f"sqlite:///{tmp_path / 'timing.sqlite3'}", RATELIMIT_ENABLED=False,
                             APITOKENS_PASSWORD_HASH_METHOD=None)
    with app.app_context():
        hostapp.db.create_all()
        default_hash = generate_password_hash("pw-correct")  # werkzeug's default method, not the tests' fast one
        hostapp.db.session.add(hostapp.User(username="alice", email="alice@example.com", password_hash=default_hash))
        hostapp.db.session.commit()
        client = app.test_client()

        def timed(username: str, password: str) -> float:
            started = time.perf_counter()
            response = client.post("/api/authenticate/userpass", json={"username": username, "password": password})
            elapsed = time.perf_counter() - started
            assert response.status_code == 401
            assert response.json["error"] == "invalid_credentials"
            return elapsed

        for _ in range(5):  # warm up: the first wrong-user try makes the dummy hash
            timed("nobody", "x"), timed("alice", "x")
        wrong_user, wrong_password = [], []
        for i in range(TRIES):
            pair = [(wrong_user, f"nobody{i}"), (wrong_password, "alice")]
            for samples, username in pair if i % 2 else reversed(pair):
                samples.append(timed(username, f"guess-{i}"))
        user_median, password_median = statistics.median(wrong_user), statistics.median(wrong_password)
        print(f"\nuserpass medians over {TRIES} tries each: wrong user {user_median * 1000:.2f} ms, "
              f"wrong password {password_median * 1000:.2f} ms (hash {default_hash.split('$')[0]})")
        assert abs(user_median - password_median) <= 0.10 * max(user_median, password_median)
        hostapp.db.session.remove()
        hostapp.db.engine.dispose()
