"""The token page's frame (``GET /tokens`` and its forms), shared by the parts
that fill it: :mod:`flask_apitokens.views.ui` (a person's tokens, an
administrator's API keys) and :mod:`flask_apitokens.oauth2.admin` (the OAuth2
apps a person approved, an administrator's OAuth2 clients).

HTML, not JSON: a logged-in browser session only (a request carrying an API
credential is refused), Flask-WTF forms with CSRF tokens, and headers that keep
the page out of frames, caches and Referer headers. A new secret is rendered
once, in the response to the form that made it, and never put in the session.

Each part adds its routes to the blueprint and a *section*: a function that
gives the page template what the part shows (see :meth:`PageBlueprint.add_section`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_url
from werkzeug.exceptions import HTTPException

from .. import dberrors, errors
from ..credentials import read_authorization, session_user
from ..state import state
from ..web import roll_back_unavailable
from .ui_forms import ConfirmForm

#: script only from the page's own static folder (the copy button); no inline code anywhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

#: Variables the page template reads whether or not a section gives them (a host's own template may too).
TEMPLATE_DEFAULTS: dict[str, Any] = {"new_secret": None, "new_client": None, "oauth2": False}

#: ``section(user, is_admin)``: what one part of the page shows, as template variables.
Section = Callable[[Any, bool], dict[str, Any]]


class PageBlueprint(Blueprint):
    """The page's blueprint, with the sections its parts added."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections: list[Section] = []

    def add_section(self, section: Section) -> None:
        """Show ``section``'s variables on the page, after those of the sections added before."""
        self.sections.append(section)


# -- guards and headers ------------------------------------------------------------
def require_session() -> Any:
    """Every page needs a logged-in browser session; static files do not."""
    if request.endpoint == "apitokens_ui.static":
        return None
    if read_authorization(request.headers.get("Authorization")) is not None:
        abort(403, "The token page is for a logged-in browser session, not for API credentials.")
    if session_user() is not None:  # a deactivated person is logged out and refused here
        return None
    login_view = state().settings["LOGIN_VIEW"]
    if not login_view and hasattr(current_app, "login_manager"):
        login_view = current_app.login_manager.login_view
    if not login_view:
        abort(401, "Log in to manage your tokens.")
    return redirect(login_url(login_view, next_url=request.url))


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def template_context() -> dict[str, Any]:
    name = None
    if current_user.is_authenticated:
        name = state().users.profile(current_user._get_current_object()).get("username")
    return {"apitokens_username": name}


def the_user() -> Any:
    return current_user._get_current_object()


def is_admin(user: Any) -> bool:
    return bool(state().users.profile(user).get("is_admin"))


def require_admin(what: str = "API keys") -> Any:
    user = the_user()
    if not is_admin(user):
        abort(403, f"Only administrators manage {what}.")
    return user


# -- forms and confirmations -----------------------------------------------------------
def refuse_bad_csrf(form: Any) -> None:
    """A post without a valid CSRF token is refused outright (400), not re-rendered."""
    if "csrf_token" in form.errors:
        abort(400, "The form's security token is missing or has expired. Reload the page and try again.")


def confirmed() -> bool:
    """Whether this is the POST of a confirmation page, with its CSRF token (a
    POST without one is refused); on GET the page is shown."""
    if request.method != "POST":
        return False
    form = ConfirmForm()
    if form.validate_on_submit():
        return True
    refuse_bad_csrf(form)
    return False


def confirm_page(template: str, **context: Any) -> str:
    return render_template(template, form=ConfirmForm(), cancel_url=url_for("apitokens_ui.tokens"), **context)


def format_time(moment: dt.datetime | None, empty: str = "never") -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else empty


def page(*, status: int = 200, **shown: Any) -> tuple[str, int]:
    """The token page: what every section shows, then ``shown`` on top (a new
    secret, or a form that comes back with its errors)."""
    user = the_user()
    admin = is_admin(user)
    context: dict[str, Any] = {**TEMPLATE_DEFAULTS, "is_admin": admin}
    # The blueprint is made per application, so its sections are this application's.
    blueprint = cast(PageBlueprint, current_app.blueprints[request.blueprint or ""])
    for section in blueprint.sections:
        context.update(section(user, admin))
    context.update(shown)
    return render_template("apitokens/tokens.html", **context), status


# -- errors: an HTML page, never a 500 for bad input ---------------------------------------
def error_page(title: str, message: str, status: int) -> tuple[str, int]:
    return render_template("apitokens/error.html", title=title, message=message, status=status), status


def http_error(error: HTTPException) -> Any:
    return error_page(error.name or "Error", error.description or "", error.code or 500)


def service_error(error: errors.APITokensError) -> Any:
    return error_page("Not done", error.message, error.status)


def database_error(error: sa.exc.SQLAlchemyError) -> Any:
    roll_back_unavailable(error)
    dberrors.log_once(error, f"the token page ({request.method} {request.path})")
    return error_page("Try again shortly", "The token store is unavailable.", 503)


def create_blueprint() -> PageBlueprint:
    """The page's blueprint, with its guards, headers and error pages; the parts
    add their routes and sections (``views.ui.register``, ``oauth2.admin.register``)."""
    package = Path(__file__).resolve().parent.parent
    blueprint = PageBlueprint("apitokens_ui", __name__, template_folder=package / "templates",
                              static_folder=package / "static", static_url_path="/static")
    blueprint.before_request(require_session)
    blueprint.after_request(add_security_headers)
    blueprint.add_app_template_filter(format_time, "apitokens_time")
    blueprint.context_processor(template_context)
    blueprint.register_error_handler(HTTPException, http_error)
    blueprint.register_error_handler(errors.APITokensError, service_error)
    blueprint.register_error_handler(sa.exc.OperationalError, database_error)
    blueprint.register_error_handler(sa.exc.InterfaceError, database_error)
    blueprint.register_error_handler(sa.exc.ProgrammingError, database_error)
    return blueprint
