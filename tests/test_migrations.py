"""Flask-Migrate picks up the extension's tables (issue 15, item 2): a fresh
host application in a temp dir runs ``flask db init``, ``flask db migrate``
and ``flask db upgrade``, then ``flask db check`` finds nothing left to do, on
SQLite and on PostgreSQL (a database of its own, made and dropped here)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import POSTGRES_URL, need, need_module

ROOT = Path(__file__).resolve().parent.parent

HOST = textwrap.dedent('''
    from flask import Flask
    from flask_login import LoginManager, UserMixin
    from flask_migrate import Migrate
    from flask_sqlalchemy import SQLAlchemy

    from flask_apitokens import APITokens

    db = SQLAlchemy()
    migrate = Migrate()
    login_manager = LoginManager()
    apitokens = APITokens()


    class User(UserMixin, db.Model):
        id = db.Column(db.Integer, primary_key=True)
        username = db.Column(db.String(80), unique=True, nullable=False)
        email = db.Column(db.String(320), unique=True)
        password_hash = db.Column(db.String(256))


    def create_app():
        app = Flask(__name__)
        app.config.from_prefixed_env()
        db.init_app(app)
        migrate.init_app(app, db)
        login_manager.init_app(app)
        # Every table of the extension, the OAuth2 server's too.
        apitokens.init_app(app, db=db, user_model=User, OAUTH2_SERVER=True)
        return app
''')

TABLES = {"user", "apitokens_token", "apitokens_token_use", "apitokens_identity", "apitokens_oauth2_client",
          "apitokens_oauth2_code", "apitokens_oauth2_grant", "alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrate_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL to test migrations on PostgreSQL")
    base = sa.engine.make_url(POSTGRES_URL)
    name = f"{base.database}_migrate"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def flask_db(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLASK_APP": "host:create_app", "FLASK_SECRET_KEY": "a migrated host's secret key",
           "FLASK_SQLALCHEMY_DATABASE_URI": url, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("FLASK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_flask_migrate_creates_every_table_and_is_clean_after(tmp_path: Path, migrate_url: str) -> None:
    need_module("flask_migrate")
    (tmp_path / "host.py").write_text(HOST)
    for step in (["init"], ["migrate", "-m", "first"], ["upgrade"]):
        result = flask_db(tmp_path, migrate_url, *step)
        assert result.returncode == 0, f"flask db {' '.join(step)}:\n{result.stdout}{result.stderr}"
    revisions = list((tmp_path / "migrations" / "versions").glob("*_first.py"))
    assert len(revisions) == 1
    script = revisions[0].read_text()
    for table in TABLES - {"alembic_version"}:
        assert f"op.create_table('{table}'" in script, table

    engine = sa.create_engine(migrate_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == TABLES
        token_columns = {c["name"] for c in sa.inspect(engine).get_columns("apitokens_token")}
        assert {"id", "digest", "user_id", "expires_at", "revoked_at"} <= token_columns
    finally:
        engine.dispose()

    check = flask_db(tmp_path, migrate_url, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_a_schema_change_is_found_by_autogenerate(tmp_path: Path) -> None:
    """What a later version's schema change looks like to a host: ``flask db
    check`` fails until ``flask db migrate`` and ``flask db upgrade`` ran
    (SQLite only: the steps are the same on PostgreSQL, tested above)."""
    need_module("flask_migrate")
    migrate_url = f"sqlite:///{tmp_path / 'later.sqlite3'}"
    (tmp_path / "host.py").write_text(HOST)
    for step in (["init"], ["migrate", "-m", "first"], ["upgrade"]):
        assert flask_db(tmp_path, migrate_url, *step).returncode == 0
    # Stand-in for a new version's new column: a column the database does not have yet.
    changed = HOST.replace("    return app", "    from sqlalchemy import Column, Integer\n"
                           "    db.metadata.tables['apitokens_token'].append_column(Column('later', Integer))\n"
                           "    return app")
    assert changed != HOST
    (tmp_path / "host.py").write_text(changed)
    check = flask_db(tmp_path, migrate_url, "check")
    assert check.returncode != 0 and "New upgrade operations detected" in check.stdout + check.stderr
    assert flask_db(tmp_path, migrate_url, "migrate", "-m", "later").returncode == 0
    assert flask_db(tmp_path, migrate_url, "upgrade").returncode == 0
    assert flask_db(tmp_path, migrate_url, "check").returncode == 0
    engine = sa.create_engine(migrate_url)
    try:
        assert "later" in {c["name"] for c in sa.inspect(engine).get_columns("apitokens_token")}
    finally:
        engine.dispose()
