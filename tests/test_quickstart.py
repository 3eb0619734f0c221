"""The README's quickstart, run as it stands (issue 15): the code is read from
README.md by this test, so the two cannot drift apart."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text[text.index("## Quickstart for a host application"):]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python block in the README's quickstart"
    return found.group(1)


def curl_form(text: str) -> dict[str, str]:
    """The form fields of the README's first curl --data line."""
    data = re.search(r'curl --data "([^"]+)"', text)
    assert data
    return dict(pair.split("=", 1) for pair in data.group(1).split("&"))


@pytest.fixture
def quickstart(tmp_path: Path, database_url: str) -> Any:
    path = tmp_path / "quickstart_host.py"
    path.write_text(quickstart_code())
    spec = importlib.util.spec_from_file_location("quickstart_host", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["quickstart_host"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["quickstart_host"]


def test_the_readme_quickstart_works_as_written(quickstart: Any, database_url: str) -> None:
    app = quickstart.create_app({"SECRET_KEY": "the quickstart test's secret key",
                                 "SQLALCHEMY_DATABASE_URI": database_url})
    db, User = quickstart.db, quickstart.User
    with app.app_context():
        db.drop_all()
        db.create_all()
        try:
            db.session.add(User(username="alice", email="alice@example.com",
                                password_hash=generate_password_hash("a password")))
            db.session.commit()
            client = app.test_client()
            form = {**curl_form(README.read_text()), "password": "a password"}
            assert form["scopes"] == "reports:read" and form["username"] == "alice"
            issued = client.post("/api/authenticate/userpass", data=form)
            assert issued.status_code == 200, issued.get_json()
            token = issued.get_json()["token"]
            assert token.startswith("apt_") and issued.get_json()["expiresOn"].endswith("Z")

            response = client.get("/reports", headers={"Authorization": f"token {token}"})
            assert response.status_code == 200
            assert response.get_json() == {"owner": "alice"}
            assert client.get("/reports").status_code == 401
            # The user_loader the quickstart shows is what Flask-Login uses for a session.
            assert quickstart.load_user("1").username == "alice"
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_the_quickstart_refuses_to_start_without_a_real_secret_key(quickstart: Any, database_url: str) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        quickstart.create_app({"SECRET_KEY": "dev", "SQLALCHEMY_DATABASE_URI": database_url})
