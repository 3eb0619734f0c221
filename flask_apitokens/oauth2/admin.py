"""The OAuth2 part of the token page: a person sees and takes back the apps
they approved; an administrator registers and deletes OAuth2 clients.

:func:`register` adds the routes and the section to the page's blueprint
(:mod:`flask_apitokens.views.page`) when ``APITOKENS_OAUTH2_SERVER`` is true.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, url_for

from ..state import state
from ..views.page import PageBlueprint, confirm_page, confirmed, page, refuse_bad_csrf, require_admin, the_user
from . import clients, grants_store
from .admin_forms import client_form, redirect_uri_lines


def app_rows(user: Any) -> list[dict[str, Any]]:
    """The OAuth2 apps ``user`` approved, with each scope's description."""
    descriptions = state().settings.scopes
    return [{
        "client_id": app.client_id,
        "name": app.client_name,
        "scopes": [(scope, descriptions.get(scope, "")) for scope in app.scopes],
        "approved_at": app.approved_at,
        "last_approved_at": app.last_approved_at,
        "live_tokens": app.live_tokens,
    } for app in grants_store.list_approved_apps(user)]


def client_row(client: Any) -> dict[str, Any]:
    """:func:`.clients.client_json`, with ``created_at`` a datetime for the page."""
    return {**clients.client_json(client), "created_at": client.created_at}


def oauth2_section(user: Any, admin: bool) -> dict[str, Any]:
    """The apps the user approved; for an administrator, the OAuth2 clients and
    the form to register one too."""
    context: dict[str, Any] = {"oauth2": True, "apps": app_rows(user)}
    if admin:
        context["clients"] = [client_row(client) for client in clients.list_clients()]
        context["client_form"] = client_form(state().settings, formdata=None)
    return context


# -- views -------------------------------------------------------------------------------
def revoke_app(client_id: str) -> Any:
    """GET: what the app may do, and a confirmation. POST: take the approval
    back; the app's access and refresh tokens stop working at once."""
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
    require_admin("OAuth2 clients")
    form = client_form(state().settings)
    if not form.validate_on_submit():
        refuse_bad_csrf(form)
        return page(status=400, client_form=form)
    made = clients.create_client(name=form.name.data.strip(), redirect_uris=redirect_uri_lines(form.redirect_uris.data),
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


def register(blueprint: PageBlueprint) -> None:
    blueprint.add_section(oauth2_section)
    blueprint.add_url_rule("/apps/<path:client_id>/revoke", "revoke_app", revoke_app, methods=["GET", "POST"])
    blueprint.add_url_rule("/clients/create", "create_client", create_client, methods=["POST"])
    blueprint.add_url_rule("/clients/<path:client_id>/delete", "delete_client", delete_client,
                           methods=["GET", "POST"])
