"""How the extension finds, checks and creates users: one small seam.

:class:`UserStore` is the protocol; :class:`SQLAlchemyUserStore` is the default
for a Flask-SQLAlchemy user model with ``username``, ``email`` and either a
werkzeug ``password_hash`` column or a ``check_password()`` method. A host whose
users live elsewhere passes its own store: ``init_app(app, db=db, user_model=User,
user_store=MyStore(...))``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from .rowuser import RowUser


@runtime_checkable
class UserStore(Protocol):
    #: A boolean column of the user table read on every token check (in the same
    #: SQL statement), so a deactivated user is refused at once; None: every user is active.
    active_column: sa.Column | None

    def get(self, user_id: Any) -> Any | None: ...

    def user_id(self, user: Any) -> Any: ...

    def find_by_login(self, login: str) -> Any | None:
        """The user whose username (or email) is ``login``."""

    def find_by_email(self, email: str) -> Any | None: ...

    def authenticate(self, login: str, password: str, *, by_email: bool = False) -> Any | None:
        """The active user ``login`` (an email when ``by_email``) if ``password`` is
        their local password, else None, taking the same time whether or not the
        user exists."""

    def is_active(self, user: Any) -> bool:
        """The one rule for "may this person act", asked by every path (the
        token check reads ``active_column`` in SQL; OAuth2, the pages and
        session routes ask this). Must agree with ``active_column``."""

    def create_user(self, *, username: str, email: str | None, **attributes: Any) -> Any:
        """Make (and flush, not commit) a user with no local password."""

    def update_user(self, user: Any, **attributes: Any) -> None: ...

    def profile(self, user: Any) -> dict[str, Any]:
        """``person_id``, ``username``, ``email``, ``organization``, ``is_admin``."""


def is_utf8(text: str) -> bool:
    """False for a lone surrogate ("\\udcff" is valid JSON): no database can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class RowUserStore(Protocol):
    """Optional, on top of :class:`UserStore`: a store that can make a user from
    the columns of its row. The token check's one statement then also reads
    ``user_columns`` (a join on the user table), and ``current_user`` is made
    with :meth:`user_from_row` when a view reads it, with no second statement.
    A store without these (or with ``user_columns`` empty) keeps the path of
    :meth:`UserStore.get`."""

    #: Columns of one user table, read with the token by the check's statement.
    user_columns: tuple[sa.Column, ...]

    def user_from_row(self, values: Sequence[Any], dialect: Any) -> Any:
        """The user whose row holds ``values`` (the driver's values, in
        ``user_columns`` order; convert them with the columns' types for ``dialect``)."""


def _first_attribute(model: Any, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if hasattr(model, name)), None)


class SQLAlchemyUserStore:
    """The default store, for a Flask-SQLAlchemy model. Attribute names are found
    by looking at the model, and can be given explicitly.

    The token's owner is made from the columns the check's statement read
    (:class:`RowUserStore`). A subclass that overrides :meth:`get` and not
    :meth:`user_from_row` has its ``get`` called instead, at a second statement."""

    def __init__(self, db: Any, user_model: Any, *, username_attr: str | None = None,
                 email_attr: str | None = None, password_hash_method: str | None = None) -> None:
        self.db = db
        self.model = user_model
        table = user_model.__table__
        self.username_attr = username_attr or _first_attribute(user_model, ("username", "name", "login"))
        self.email_attr = email_attr or _first_attribute(user_model, ("email",))
        if self.username_attr is None and self.email_attr is None:
            raise RuntimeError("flask-apitokens: the user model needs a username or email attribute")
        self.password_attr = next((n for n in ("password_hash", "password") if n in table.c), None)
        self.admin_attr = _first_attribute(user_model, ("is_admin", "admin"))
        self.organization_attr = _first_attribute(user_model, ("organization", "organization_name"))
        active = next((n for n in ("active", "is_active") if n in table.c), None)
        self.active_column = table.c[active] if active else None
        # The mapped attribute of that column (its name may differ from the column's).
        self._active_attr = (sa.inspect(user_model).get_property_by_column(self.active_column).key
                             if self.active_column is not None else None)
        #: werkzeug method of the dummy hash (None: werkzeug's default); APITOKENS_PASSWORD_HASH_METHOD.
        self.password_hash_method = password_hash_method
        self._dummy_hash: str | None = None
        # The token's owner without a second statement (see rowuser.py); empty when
        # the model is one the ORM must load itself, or when a subclass loads users
        # its own way (its get, say, filters by tenant) and makes no users from rows.
        self._rows = RowUser(db, user_model)
        own_get = type(self).get is not SQLAlchemyUserStore.get
        own_rows = type(self).user_from_row is not SQLAlchemyUserStore.user_from_row
        self.user_columns = () if own_get and not own_rows else self._rows.columns

    # -- lookups ----------------------------------------------------------------
    def get(self, user_id: Any) -> Any | None:
        return self.db.session.get(self.model, user_id)

    def user_id(self, user: Any) -> Any:
        return sa.inspect(user).identity[0]

    def user_from_row(self, values: Sequence[Any], dialect: Any) -> Any:
        return self._rows.build(values, dialect)

    def _one_by(self, attr: str | None, value: str, *, casefold: bool = False) -> Any | None:
        if attr is None or not value or not is_utf8(value):
            return None  # no user has a name the database cannot even be sent
        column = getattr(self.model, attr)
        clause = sa.func.lower(column) == value.lower() if casefold else column == value
        return self.db.session.execute(sa.select(self.model).where(clause).limit(2)).scalars().first()

    def find_by_email(self, email: str) -> Any | None:
        return self._one_by(self.email_attr, email, casefold=True)

    def find_by_login(self, login: str) -> Any | None:
        user = self._one_by(self.username_attr, login)
        if user is None and "@" in login:
            user = self.find_by_email(login)
        return user

    # -- passwords --------------------------------------------------------------
    def _dummy(self) -> str:
        """A hash of a random password made with the configured method (the one
        the host makes its hashes with), so that checking a login for nobody
        costs what checking a known user's costs. Not "the last method seen":
        with hashes of mixed methods that made the cost of an unknown user
        follow whichever user was tried last."""
        if self._dummy_hash is None:
            password = secrets.token_urlsafe(16)
            method = self.password_hash_method
            self._dummy_hash = generate_password_hash(password, method) if method else generate_password_hash(password)
        return self._dummy_hash

    def check_password(self, user: Any, password: str) -> bool:
        """True if ``password`` is the user's local password. A user with no local
        password (made by LDAP or a provider) has none that matches."""
        if hasattr(user, "check_password") and not self.password_attr:
            return bool(user.check_password(password))
        stored = getattr(user, self.password_attr, None) if self.password_attr else None
        if not stored:
            check_password_hash(self._dummy(), password)  # same time as a real check
            return False
        if hasattr(user, "check_password"):
            return bool(user.check_password(password))
        return check_password_hash(stored, password)

    def authenticate(self, login: str, password: str, *, by_email: bool = False) -> Any | None:
        if not (is_utf8(login) and is_utf8(password)):
            # A lone surrogate ("\udcff" in JSON) can be neither looked up nor hashed:
            # nobody has it, and refusing it costs what refusing anyone costs.
            login, password = "", secrets.token_urlsafe(16)
        find = self.find_by_email if by_email else self.find_by_login
        user = find(login) if login else None
        if user is None:
            check_password_hash(self._dummy(), password)  # no user enumeration by timing
            return None
        if not self.check_password(user, password) or not self.is_active(user):
            return None
        return user

    # -- attributes ---------------------------------------------------------------
    def is_active(self, user: Any) -> bool:
        """The value of the column the token check reads, never Flask-Login's
        ``UserMixin.is_active`` (always True) when there is such a column."""
        if self._active_attr:
            return bool(getattr(user, self._active_attr))
        return bool(getattr(user, "is_active", True))

    def create_user(self, *, username: str, email: str | None, **attributes: Any) -> Any:
        values = dict(attributes)
        if self.username_attr:
            values[self.username_attr] = username
        if self.email_attr:
            values[self.email_attr] = email
        user = self.model(**{k: v for k, v in values.items() if hasattr(self.model, k)})
        self.db.session.add(user)
        self.db.session.flush()
        return user

    def update_user(self, user: Any, **attributes: Any) -> None:
        for key, value in attributes.items():
            if key == "is_admin" and self.admin_attr:
                key = self.admin_attr
            if hasattr(self.model, key):
                setattr(user, key, value)

    def profile(self, user: Any) -> dict[str, Any]:
        return {
            "person_id": self.user_id(user),
            "username": getattr(user, self.username_attr) if self.username_attr else None,
            "email": getattr(user, self.email_attr) if self.email_attr else None,
            "organization": getattr(user, self.organization_attr, None) if self.organization_attr else None,
            "is_admin": bool(getattr(user, self.admin_attr, False)) if self.admin_attr else False,
        }
