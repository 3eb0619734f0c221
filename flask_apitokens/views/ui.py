"""The token page (``GET /tokens``): a person lists, creates and revokes their
tokens and takes back the OAuth2 apps they approved; an administrator also
manages API keys and OAuth2 clients.

HTML, not JSON: a logged-in browser session only (a request carrying an API
credential is refused), Flask-WTF forms with CSRF tokens, and headers that keep
the page out of frames, caches and Referer headers. A new secret is rendered
once, in the response to the form that made it, and never put in the session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_url
from werkzeug.exceptions import HTTPException

from .. import dberrors, errors, recent_uses
from ..config import DAY
from ..credentials import read_authorization, session_user
from ..models import utcnow
from ..service import KEY, PERSONAL_KINDS, TokenInfo
from ..state import state
from .ui_forms import (
    ClientForm,
    ConfirmForm,
    KeyForm,
    TokenForm,
    client_form,
    key_form,
    redirect_uri_lines,
    token_form,
)

if TYPE_CHECKING:
    from ..state import State

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

#: What each state of a credential is called on the page.
STATE_LABELS = {
    "active": "Active",
    "grace": "Expiring (rotated)",
    "expired": "Expired",
    "revoked": "Revoked",
}
#: Why a credential was revoked, as the page says it ("revoked: reported as leaked").
REVOKED_REASONS = {
    "leaked": "reported as leaked",
    "password_changed": "password changed",
    "logout_everywhere": "logged out everywhere",
    "unused": "unused too long",
}


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


def oauth2_on() -> bool:
    return bool(state().settings["OAUTH2_SERVER"])


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


# -- what the templates show ----------------------------------------------------------
def credential_state(info: TokenInfo, now: dt.datetime, successor_times: Iterable[dt.datetime]) -> str:
    """active / grace / expired / revoked. A live credential is "grace" when it
    expires APITOKENS_ROTATION_GRACE seconds after a same-named credential was made:
    what :meth:`~flask_apitokens.service.TokenService.rotate` leaves behind."""
    if info.revoked_at is not None:
        return "revoked"
    if info.expires_at is not None and info.expires_at <= now:
        return "expired"
    if info.expires_at is not None:
        grace_start = info.expires_at - dt.timedelta(seconds=state().settings["ROTATION_GRACE"])
        if any(abs((made - grace_start).total_seconds()) < 2 for made in successor_times):
            return "grace"
    return "active"


def rows_for(infos: list[TokenInfo], *, owners: dict[Any, str] | None = None,
             uses: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """What a table row shows for each credential (never a secret: there is none here)."""
    now = utcnow()
    made_by_family: dict[tuple[Any, ...], list[dt.datetime]] = {}
    for info in infos:
        if info.created_at is not None:
            family = (info.user_id, info.kind, info.via, info.name, info.scopes)
            made_by_family.setdefault(family, []).append(info.created_at)
    rows = []
    for info in infos:
        family = (info.user_id, info.kind, info.via, info.name, info.scopes)
        successors = [t for t in made_by_family.get(family, []) if info.created_at is None or t > info.created_at]
        status = credential_state(info, now, successors)
        rows.append({
            "id": info.id,
            "name": info.name or "(no name)",
            "kind": info.kind,
            "via": info.via,
            "owner": owners.get(info.user_id, str(info.user_id)) if owners is not None else None,
            "scopes": sorted(info.scopes),
            "created_at": info.created_at,
            "last_used_at": info.last_used_at,
            "expires_at": info.expires_at,
            "state": status,
            "state_label": STATE_LABELS[status] + (
                f": {REVOKED_REASONS[info.revoked_reason]}"
                if status == "revoked" and info.revoked_reason in REVOKED_REASONS else ""),
            "revoked_reason": info.revoked_reason if status == "revoked" else None,
            "recent_uses": uses.get(info.id, []) if uses is not None else [],
            "revocable": status in ("active", "grace"),
        })
    return rows


def format_time(moment: dt.datetime | None, empty: str = "never") -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else empty


def app_rows(user: Any) -> list[dict[str, Any]]:
    """The OAuth2 apps ``user`` approved, with each scope's description."""
    from ..oauth2.grants_store import list_approved_apps

    descriptions = state().settings.scopes
    return [{
        "client_id": app.client_id,
        "name": app.client_name,
        "scopes": [(scope, descriptions.get(scope, "")) for scope in app.scopes],
        "approved_at": app.approved_at,
        "last_approved_at": app.last_approved_at,
        "live_tokens": app.live_tokens,
    } for app in list_approved_apps(user)]


def client_row(client: Any) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": bool(client.public),
        "redirect_uris": client.redirect_uri_list,
        "scopes": client.scope_list,
        "created_at": client.created_at,
    }


def page(*, status: int = 200, token_form_: TokenForm | None = None, key_form_: KeyForm | None = None,
         client_form_: ClientForm | None = None, new_secret: dict[str, Any] | None = None,
         new_client: dict[str, Any] | None = None) -> tuple[str, int]:
    """The token page: the user's tokens and the create form, and the apps
    they approved; for an administrator, the API keys and the OAuth2 clients
    with their forms too."""
    st = state()
    user = the_user()
    admin = is_admin(user)
    tokens = st.service.list(st.users.user_id(user), kinds=PERSONAL_KINDS, include_inactive=True)
    context: dict[str, Any] = {
        "tokens": rows_for(tokens, uses=recent_uses.for_tokens(st.db.session, st.models, [t.id for t in tokens])),
        "token_form": token_form_ or token_form(st.settings, formdata=None),
        "is_admin": admin,
        "new_secret": new_secret,
        "oauth2": oauth2_on(),
        "new_client": new_client,
    }
    if context["oauth2"]:
        context["apps"] = app_rows(user)
    if admin:
        keys = st.service.list(None, kinds=(KEY,), include_inactive=True)
        owners = {}
        for owner_id in {info.user_id for info in keys}:
            owner = st.users.get(owner_id)
            owners[owner_id] = (st.users.profile(owner).get("username") or str(owner_id)) if owner else str(owner_id)
        context["keys"] = rows_for(keys, owners=owners)
        context["key_form"] = key_form_ or key_form(st.settings, formdata=None)
        if context["oauth2"]:
            from ..oauth2.clients import list_clients

            context["clients"] = [client_row(client) for client in list_clients()]
            context["client_form"] = client_form_ or client_form(st.settings, formdata=None)
    return render_template("apitokens/tokens.html", **context), status


def seconds_from(days: int | None) -> int | None:
    return days * DAY if days else None  # NEVER is 0


# -- views -------------------------------------------------------------------------------
def tokens() -> Any:
    return page()


def create_token() -> Any:
    st = state()
    form = token_form(st.settings)
    if not form.validate_on_submit():
        refuse_bad_csrf(form)
        return page(status=400, token_form_=form)
    issued = st.service.issue(the_user(), via="page", name=form.name.data.strip(), scopes=form.scopes.data or [],
                              expires_in=seconds_from(form.expires_in_days.data), ip=request.remote_addr)
    secret = {"kind": "token", "token": issued.token, "name": issued.info.name,
              "expires_at": issued.info.expires_at}
    return page(status=201, new_secret=secret)


def create_key() -> Any:
    st = state()
    require_admin()
    form = key_form(st.settings)
    if not form.validate_on_submit():
        refuse_bad_csrf(form)
        return page(status=400, key_form_=form)
    owner = st.users.find_by_login(form.username.data.strip())
    if owner is None:
        form.username.errors.append("No user has this username.")
        return page(status=400, key_form_=form)
    issued = st.service.issue(owner, via="page", kind=KEY, name=form.name.data.strip(), scopes=form.scopes.data or [],
                              expires_in=seconds_from(form.expires_in_days.data), ip=request.remote_addr)
    secret = {"kind": "key", "token": issued.token, "name": issued.info.name,
              "owner": st.users.profile(owner).get("username"), "expires_at": issued.info.expires_at}
    return page(status=201, new_secret=secret)


def _confirm_or_revoke(row: Any, *, what: str, owner: str | None = None) -> Any:
    """GET: the confirmation page. POST (with its CSRF token): revoke."""
    st = state()
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        abort(404, f"No such active {what}.")
    if confirmed():
        st.service.revoke([row.id], user_id=None if row.kind == KEY else row.user_id, reason="revoked")
        flash(f"The {what} \u201c{row.name or row.id}\u201d was revoked.")
        return redirect(url_for("apitokens_ui.tokens"))
    return confirm_page("apitokens/confirm_revoke.html", what=what, owner=owner,
                        row=rows_for([st.service.info(row)])[0])


def revoke_token(token_id: str) -> Any:
    st = state()
    row = st.service.get(token_id, user_id=st.users.user_id(the_user()), kinds=PERSONAL_KINDS)
    return _confirm_or_revoke(row, what="token")


def revoke_key(token_id: str) -> Any:
    st = state()
    require_admin()
    row = st.service.get(token_id, kinds=(KEY,))
    owner = None
    if row is not None:
        found = st.users.get(row.user_id)
        owner = st.users.profile(found).get("username") if found is not None else None
    return _confirm_or_revoke(row, what="API key", owner=owner)


# -- OAuth2: apps a person approved, clients an administrator registers ----------------------
def revoke_app(client_id: str) -> Any:
    """GET: what the app may do, and a confirmation. POST: take the approval
    back; the app's access and refresh tokens stop working at once."""
    from ..oauth2 import grants_store

    user = the_user()  # the id is only compared with the approved apps', never looked up
    app = next((row for row in app_rows(user) if row["client_id"] == client_id), None)
    if app is None:
        abort(404, "You have not approved this application.")
    if confirmed():
        grants_store.revoke_app(user, client_id)
        flash(f"\u201c{app['name']}\u201d no longer has access to your account.")
        return redirect(url_for("apitokens_ui.tokens"))
    return confirm_page("apitokens/confirm_revoke_app.html", app=app)


def create_client() -> Any:
    from ..oauth2.clients import create_client as register

    st = state()
    require_admin("OAuth2 clients")
    form = client_form(st.settings)
    if not form.validate_on_submit():
        refuse_bad_csrf(form)
        return page(status=400, client_form_=form)
    made = register(name=form.name.data.strip(), redirect_uris=redirect_uri_lines(form.redirect_uris.data),
                    public=form.client_type.data == "public", scopes=form.scopes.data or [])
    client = made.client
    new_client = {"client_id": client.client_id, "name": client.name, "public": bool(client.public)}
    secret = None
    if made.client_secret is not None:
        secret = {"kind": "client", "token": made.client_secret, "name": client.name,
                  "client_id": client.client_id, "expires_at": None}
    return page(status=201, new_secret=secret, new_client=new_client)


def delete_client(client_id: str) -> Any:
    """GET: the client and a confirmation. POST: delete it, revoking every token it holds."""
    from ..oauth2 import clients

    require_admin("OAuth2 clients")
    client = clients.get_client(client_id)
    if client is None:
        abort(404, "No such OAuth2 client.")
    if confirmed():
        name = client.name
        clients.delete_client(client_id)
        flash(f"The OAuth2 client \u201c{name}\u201d was deleted and its tokens revoked.")
        return redirect(url_for("apitokens_ui.tokens"))
    return confirm_page("apitokens/confirm_delete_client.html", client=client_row(client))


# -- errors: an HTML page, never a 500 for bad input ---------------------------------------
def error_page(title: str, message: str, status: int) -> tuple[str, int]:
    return render_template("apitokens/error.html", title=title, message=message, status=status), status


def http_error(error: HTTPException) -> Any:
    return error_page(error.name or "Error", error.description or "", error.code or 500)


def service_error(error: errors.APITokensError) -> Any:
    return error_page("Not done", error.message, error.status)


def database_error(error: sa.exc.SQLAlchemyError) -> Any:
    if not dberrors.is_unavailable(error):
        raise error  # bad SQL is a bug: a 500, not "try again"
    state().db.session.rollback()
    dberrors.log_once(error, f"the token page ({request.method} {request.path})")
    return error_page("Try again shortly", "The token store is unavailable.", 503)


def create_blueprint(state: State) -> Blueprint:
    package = Path(__file__).resolve().parent.parent
    blueprint = Blueprint("apitokens_ui", __name__, template_folder=package / "templates",
                          static_folder=package / "static", static_url_path="/static")
    blueprint.before_request(require_session)
    blueprint.after_request(add_security_headers)
    blueprint.add_app_template_filter(format_time, "apitokens_time")
    blueprint.context_processor(template_context)
    blueprint.add_url_rule("", "tokens", tokens)
    blueprint.add_url_rule("/create", "create_token", create_token, methods=["POST"])
    blueprint.add_url_rule("/<token_id>/revoke", "revoke_token", revoke_token, methods=["GET", "POST"])
    blueprint.add_url_rule("/keys/create", "create_key", create_key, methods=["POST"])
    blueprint.add_url_rule("/keys/<token_id>/revoke", "revoke_key", revoke_key, methods=["GET", "POST"])
    if state.settings["OAUTH2_SERVER"]:
        blueprint.add_url_rule("/apps/<path:client_id>/revoke", "revoke_app", revoke_app, methods=["GET", "POST"])
        blueprint.add_url_rule("/clients/create", "create_client", create_client, methods=["POST"])
        blueprint.add_url_rule("/clients/<path:client_id>/delete", "delete_client", delete_client,
                               methods=["GET", "POST"])
    blueprint.register_error_handler(HTTPException, http_error)
    blueprint.register_error_handler(errors.APITokensError, service_error)
    blueprint.register_error_handler(sa.exc.OperationalError, database_error)
    blueprint.register_error_handler(sa.exc.InterfaceError, database_error)
    blueprint.register_error_handler(sa.exc.ProgrammingError, database_error)
    return blueprint
