"""The flask-apitokens demo: ``flask --app example_app run``.

A small site with a login page, protected data (JSON and HTML) and every way
flask-apitokens hands out tokens. SQLite in the instance folder by default;
``EXAMPLE_DATABASE_URL`` names another database. Every setting can come from
the environment (``FLASK_APITOKENS_...``, ``FLASK_LDAP_...``), parsed as JSON
where it can be.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, flash, jsonify, redirect, render_template, request, url_for
from flask.cli import with_appcontext
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from flask_apitokens import APITokens, current_token, token_required

from .models import User, db

login_manager = LoginManager()
login_manager.login_view = "login"
apitokens = APITokens()
# Every form POST of the demo (log in, log out, the OAuth2 demo's buttons) carries
# a CSRF token; the extension exempts its own JSON routes, which take no cookie-only forms.
csrf = CSRFProtect()

DEMO_SCOPES = {"data:read": "Read the demo's protected data.", "data:write": "Change the demo's data."}


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _secret_key(instance: Path) -> str:
    """The instance folder keeps a generated key, so tokens survive a restart."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(**config: Any) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("EXAMPLE_DATABASE_URL", f"sqlite:///{instance / 'example.sqlite3'}"),
        APITOKENS_SCOPES=DEMO_SCOPES,
        # The demo shows every way of issuing, the opt-in ones too.
        APITOKENS_PASSWORD_EXCHANGE=True,
        APITOKENS_USER_TOKEN=True,
        APITOKENS_OAUTH2_SERVER=True,
        # Another site's pages cannot send the session cookie with their POSTs or fetches.
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.from_prefixed_env()
    app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(instance)

    db.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    apitokens.init_app(app, db=db, user_model=User)
    with app.app_context():
        db.create_all()

    register_views(app)
    app.cli.add_command(create_user)
    from .github_login import init_github_login

    init_github_login(app)
    if app.extensions["apitokens"].settings["OAUTH2_SERVER"]:
        from .oauth_demo import blueprint as oauth_demo
        from .oauth_demo import register_demo_client

        register_demo_client(app)
        app.register_blueprint(oauth_demo)
        app.context_processor(lambda: {"oauth_demo_enabled": True})
    return app


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def register_views(app: Flask) -> None:
    @app.get("/")
    def index() -> Any:
        return render_template("index.html")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        form = LoginForm()
        if form.validate_on_submit():
            user = apitokens.state().users.authenticate(form.username.data, form.password.data)
            if user is not None:
                login_user(user)
                target = request.args.get("next", "")
                return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("index"))
            flash("Wrong username or password.")
        return render_template("login.html", form=form), 200 if request.method == "GET" else 401

    @app.post("/logout")
    def logout() -> Any:
        logout_user()
        return redirect(url_for("index"))

    @app.get("/data")
    @login_required
    def data_page() -> Any:
        """An HTML page: a session cookie or, through the request loader, a
        credential that carries the built-in ``login`` scope."""
        return render_template("data.html", items=_data())

    @app.get("/api/data")
    @token_required(scopes=["data:read"])
    def data_api() -> Any:
        return jsonify(owner=current_user.username, via=current_token.via, items=_data())


def _data() -> list[dict[str, Any]]:
    return [{"id": 1, "name": "Quarterly report", "value": 42}, {"id": 2, "name": "Forecast", "value": 7}]


@click.command("create-user")
@click.argument("name")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--organization", default=None)
@click.option("--if-missing", is_flag=True, help="Do nothing if the user exists.")
@with_appcontext
def create_user(name: str, email: str, password: str, admin: bool, organization: str | None, if_missing: bool) -> None:
    """Make a demo user with a password."""
    existing = db.session.execute(sa.select(User).where((User.username == name) | (User.email == email))).scalar()
    if existing is not None:
        if if_missing:
            return
        raise click.ClickException(f"A user named {name!r} or with email {email!r} exists already.")
    user = User(username=name, email=email, is_admin=admin, organization=organization)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {name} (id {user.id})")
