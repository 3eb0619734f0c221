"""The token and its owner in one statement: ``current_user`` is made from the
row the check read, attached to the host's session as a persistent, unmodified
object, with no second statement (issue 18).

Each test builds its own host (its own Flask-SQLAlchemy ``db`` and user model,
so a relationship, a deferred column, a server default and a polymorphic model
can be tried) on a SQLite file and on PostgreSQL. Statements are counted at the
driver (sqlite3's trace callback, which sees every statement including
``BEGIN``; a counting psycopg cursor plus the pool's checkouts, since psycopg
sends ``BEGIN`` itself) and with an engine ``before_cursor_execute`` listener
(under which the check runs through Core)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, deferred, mapped_column, relationship
from werkzeug.local import LocalProxy

from flask_apitokens import APITokens, token_required
from flask_apitokens.users import SQLAlchemyUserStore
from tests.helpers import auth


def real_user() -> Any:
    """The object behind ``current_user`` (a proxy to the extension's lazy proxy)."""
    user = current_user
    while isinstance(user, LocalProxy):
        user = user._get_current_object()
    return user


TABLES = ("apitokens_identity", "apitokens_token", "owner_notes", "owner_users", "users")


class Host:
    """A host app with its own models; ``kind``: ``plain``, ``polymorphic`` or ``expression``."""

    def __init__(self, url: str, kind: str, store: Callable[[Any, Any], Any] | None = None) -> None:
        class Base(DeclarativeBase):
            pass

        db = SQLAlchemy(model_class=Base)

        class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = "owner_users"
            id: Mapped[int] = mapped_column(primary_key=True)
            username: Mapped[str] = mapped_column(sa.String(80), unique=True)
            email: Mapped[str | None] = mapped_column(sa.String(320))
            password_hash: Mapped[str | None] = mapped_column(sa.String(256))
            active: Mapped[bool] = mapped_column(default=True)
            organization: Mapped[str | None] = mapped_column(sa.String(120))
            # A server default and a Python default: filled in when the row was made.
            joined: Mapped[dt.datetime] = mapped_column(server_default=sa.func.current_timestamp())
            level: Mapped[int] = mapped_column(default=3)
            biography: Mapped[str | None] = deferred(mapped_column(sa.Text))
            role: Mapped[str] = mapped_column(sa.String(20), default="user")
            notes: Mapped[list[Note]] = relationship(back_populates="owner", order_by="Note.id")

            if kind == "polymorphic":
                __mapper_args__ = {"polymorphic_on": "role", "polymorphic_identity": "user"}
            if kind == "expression":
                shout = column_property(sa.func.upper(username))

            @property
            def is_active(self) -> bool:  # type: ignore[override]
                return self.active

        class Note(db.Model):  # type: ignore[name-defined,misc]
            __tablename__ = "owner_notes"
            id: Mapped[int] = mapped_column(primary_key=True)
            user_id: Mapped[int] = mapped_column(sa.ForeignKey("owner_users.id"))
            text: Mapped[str] = mapped_column(sa.String(80))
            owner: Mapped[User] = relationship(back_populates="notes")

        self.Admin: Any = None
        if kind == "polymorphic":
            class Admin(User):
                __mapper_args__ = {"polymorphic_identity": "admin"}  # noqa: RUF012

            self.Admin = Admin

        self.db, self.User, self.Note = db, User, Note
        app = self.app = Flask(f"owner_{kind}")
        app.config.update(SECRET_KEY="owner row test secret key", SQLALCHEMY_DATABASE_URI=url, TESTING=True)
        db.init_app(app)
        login_manager = LoginManager()
        login_manager.init_app(app)
        login_manager.user_loader(lambda user_id: db.session.get(User, int(user_id)))
        APITokens().init_app(app, db=db, user_model=User, user_store=store(db, User) if store else None)

        @app.get("/me")
        @token_required
        def me() -> Any:
            user = real_user()
            state = sa.inspect(user)
            return jsonify(username=user.username, organization=user.organization, level=user.level,
                           joined=user.joined is not None, cls=type(user).__name__,
                           persistent=state.persistent, modified=state.modified,
                           in_session=user in db.session, email=user.email)

        @app.post("/rename")
        @token_required
        def rename() -> Any:
            current_user.organization = "Renamed Ltd"
            db.session.commit()
            return jsonify(ok=True)

        @app.get("/notes")
        @token_required
        def notes() -> Any:
            return jsonify(notes=[note.text for note in current_user.notes])

        @app.get("/biography")
        @token_required
        def biography() -> Any:
            return jsonify(biography=current_user.biography)

        @app.get("/shout")
        @token_required
        def shout() -> Any:
            return jsonify(shout=current_user.shout)

        with app.app_context():
            drop(db.engine)
            db.create_all()
            alice = (self.Admin or User)(username="alice", email="alice@example.com", organization="Acme",
                                         biography="Born in a test.")
            db.session.add(alice)
            db.session.flush()
            db.session.add_all([Note(user_id=alice.id, text="first"), Note(user_id=alice.id, text="second")])
            db.session.commit()
            self.user_id = alice.id
            self.token = app.extensions["apitokens"].service.issue(alice, via="cli").token
        self.client = app.test_client()

    @property
    def engine(self) -> sa.Engine:
        with self.app.app_context():
            return self.db.engine  # type: ignore[no-any-return]

    def close(self) -> None:
        with self.app.app_context():
            self.db.session.remove()
            drop(self.db.engine)
            self.db.engine.dispose()

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=auth(self.token))

    def set_user(self, **values: Any) -> None:
        """A write through a connection of its own (as another process would)."""
        other = sa.create_engine(self.engine.url)
        with other.begin() as conn:
            conn.execute(sa.update(self.User.__table__).where(self.User.__table__.c.id == self.user_id)
                         .values(**values))
        other.dispose()

    def user_row(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.User.__table__).where(self.User.__table__.c.id == self.user_id)).one()


def drop(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}" + (" CASCADE" if engine.name != "sqlite" else "")))


@pytest.fixture
def make_host(database_url: str) -> Iterator[Callable[[str], Host]]:
    made: list[Host] = []

    def factory(kind: str = "plain", store: Callable[[Any, Any], Any] | None = None) -> Host:
        host = Host(database_url, kind, store)
        made.append(host)
        return host

    yield factory
    for host in made:
        host.close()


class DriverCounter:
    """Statements the driver runs, on every connection of ``engine`` made from
    now on (the engine is disposed, so that is all of them, the token check's
    own included), and the pool's checkouts."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        self.checkouts = 0
        self.engine = engine
        sa.event.listen(engine, "connect", self._connected)
        sa.event.listen(engine, "checkout", self._checked_out)
        engine.dispose()

    def _connected(self, dbapi_connection: Any, record: Any) -> None:
        if self.engine.name == "sqlite":
            dbapi_connection.set_trace_callback(self.statements.append)
            return
        import psycopg

        statements = self.statements

        class Counting(psycopg.Cursor):  # type: ignore[type-arg]
            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                statements.append(str(query))
                return super().execute(query, *args, **kwargs)

        dbapi_connection.cursor_factory = Counting

    def _checked_out(self, *args: Any) -> None:
        self.checkouts += 1

    def reset(self) -> None:
        self.statements.clear()
        self.checkouts = 0

    def remove(self) -> None:
        sa.event.remove(self.engine, "connect", self._connected)
        sa.event.remove(self.engine, "checkout", self._checked_out)


def second_request(host: Host, path: str = "/me") -> tuple[Any, DriverCounter]:
    """``path`` asked twice (the first makes the connections and writes
    last-used): the second answer (a 200), and what the driver saw of it."""
    counter = DriverCounter(host.engine)
    try:
        assert host.get(path).status_code == 200
        counter.reset()
        response = host.get(path)
    finally:
        counter.remove()
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, counter


def selects(counter: DriverCounter) -> list[str]:
    return [s for s in counter.statements if s.lstrip().upper().startswith("SELECT")]


def test_one_statement_at_the_driver_for_a_view_that_reads_current_user(make_host: Callable[..., Host]) -> None:
    response, counter = second_request(make_host())
    assert response.json == {"username": "alice", "organization": "Acme", "level": 3, "joined": True,
                              "cls": "User", "persistent": True, "modified": False, "in_session": True,
                              "email": "alice@example.com"}
    assert len(counter.statements) == 1, counter.statements
    statement = counter.statements[0].lower()
    assert "apitokens_token" in statement and "owner_users" in statement and "join" in statement
    assert counter.checkouts == 0  # no session transaction: no BEGIN, no ROLLBACK


def test_one_statement_seen_by_an_engine_listener(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.get("/me").status_code == 200
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(host.engine, "before_cursor_execute", watch)
    try:
        response = host.get("/me")
        assert response.status_code == 200 and response.json["username"] == "alice"
        assert len(seen) == 1 and "owner_users" in seen[0], seen
    finally:
        sa.event.remove(host.engine, "before_cursor_execute", watch)


def test_the_view_changes_and_commits_the_user(make_host: Callable[..., Host]) -> None:
    host = make_host()
    before = host.user_row()
    counter = DriverCounter(host.engine)
    try:
        response = host.client.post("/rename", headers=auth(host.token))
        assert response.status_code == 200
        updates = [s for s in counter.statements if s.lstrip().upper().startswith("UPDATE OWNER_USERS")]
    finally:
        counter.remove()
    after = host.user_row()
    assert after.organization == "Renamed Ltd"
    assert {**after._asdict(), "organization": before.organization} == before._asdict()
    # Only the changed column was written: the object was clean when the view got it.
    assert len(updates) == 1, counter.statements
    assigned = updates[0].upper().split(" SET ")[1].split(" WHERE ")[0]
    assert assigned.count("=") == 1 and "ORGANIZATION" in assigned, updates
    assert host.get("/me").json["organization"] == "Renamed Ltd"


def test_a_lazy_relationship_and_a_deferred_column_load(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.get("/notes").json == {"notes": ["first", "second"]}
    assert host.get("/biography").json == {"biography": "Born in a test."}


def test_a_change_by_another_connection_is_seen_on_the_next_request(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.get("/me").json["organization"] == "Acme"
    host.set_user(organization="Elsewhere", username="alice2")
    answer = host.get("/me").json
    assert answer["organization"] == "Elsewhere" and answer["username"] == "alice2"


def test_deactivation_refuses_at_once_and_reactivation_accepts(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.get("/me").status_code == 200
    host.set_user(active=False)
    response = host.get("/me")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    host.set_user(active=True)
    assert host.get("/me").status_code == 200


def test_the_user_already_in_the_session_is_the_one_used(make_host: Callable[..., Host]) -> None:
    host = make_host()

    @host.app.get("/same")
    @token_required
    def same() -> Any:
        loaded = host.db.session.get(host.User, host.user_id)
        return jsonify(same=real_user() is loaded)

    assert host.get("/same").json == {"same": True}


@pytest.mark.parametrize("kind", ["polymorphic", "expression"])
def test_models_the_row_cannot_fill_keep_the_orm_load(make_host: Callable[..., Host], kind: str) -> None:
    """A polymorphic model (the row may be a subclass) and an attribute mapped
    to a SQL expression are loaded by the ORM, as before: right, at a second statement."""
    host = make_host(kind)
    store = host.app.extensions["apitokens"].users
    assert store.user_columns == ()
    response, counter = second_request(host)
    assert response.json["cls"] == ("Admin" if kind == "polymorphic" else "User")
    assert response.json["username"] == "alice"
    assert len(selects(counter)) == 2, counter.statements
    if kind == "expression":
        assert host.get("/shout").json == {"shout": "ALICE"}
    assert host.get("/notes").json == {"notes": ["first", "second"]}
    host.set_user(active=False)
    assert host.get("/me").status_code == 401


def test_a_store_without_user_columns_keeps_its_own_load(make_host: Callable[..., Host]) -> None:
    """A host's own UserStore that does not offer rows: its ``get`` is used."""
    host = make_host()
    with host.app.app_context():
        service = host.app.extensions["apitokens"].service
        store = service.users
        calls: list[Any] = []

        class OwnStore:
            active_column = store.active_column

            def get(self, user_id: Any) -> Any:
                calls.append(user_id)
                return store.get(user_id)

            def __getattr__(self, name: str) -> Any:
                if name in ("user_columns", "user_from_row"):
                    raise AttributeError(name)
                return getattr(store, name)

        service.users = OwnStore()
        service._raw = None
    response = host.get("/me")
    assert response.status_code == 200 and response.json["username"] == "alice"
    assert calls == [host.user_id]


def test_a_subclass_of_the_default_store_that_overrides_get_keeps_its_get(make_host: Callable[..., Host]) -> None:
    """Its ``get`` may refuse users (a tenant filter, say): building the owner
    from the row would skip it, so it is called, at a second statement."""
    calls: list[Any] = []

    class OwnGet(SQLAlchemyUserStore):
        def get(self, user_id: Any) -> Any | None:
            calls.append(user_id)
            return super().get(user_id)

    host = make_host(store=OwnGet)
    assert host.app.extensions["apitokens"].users.user_columns == ()
    response, counter = second_request(host)
    assert response.json["username"] == "alice"
    assert len(selects(counter)) == 2, counter.statements
    assert calls == [host.user_id, host.user_id]


def test_a_subclass_that_keeps_get_still_reads_the_row(make_host: Callable[..., Host]) -> None:
    class OwnLogin(SQLAlchemyUserStore):
        def find_by_login(self, login: str) -> Any | None:
            return super().find_by_login(login.strip())

    host = make_host(store=OwnLogin)
    assert host.app.extensions["apitokens"].users.user_columns != ()
    response, counter = second_request(host)
    assert response.json["username"] == "alice"
    assert len(selects(counter)) == 1, counter.statements


def test_api_me_is_one_statement_too(make_host: Callable[..., Host]) -> None:
    host = make_host()
    response, counter = second_request(host, "/api/me")
    assert response.json["username"] == "alice" and response.json["person_id"] == host.user_id
    assert len(counter.statements) == 1, counter.statements
