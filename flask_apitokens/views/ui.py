"""The token page's own part: a person lists, creates and revokes their tokens;
an administrator also makes and revokes API keys. :func:`register` adds the
routes and the section to the page's blueprint (:mod:`flask_apitokens.views.page`,
which holds the guards, headers and error pages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from flask import abort, flash, redirect, request, url_for

from .. import recent_uses
from ..config import DAY
from ..models import utcnow
from ..service import KEY, PERSONAL_KINDS, TokenInfo
from ..state import state
from .page import PageBlueprint, confirm_page, confirmed, page, refuse_bad_csrf, require_admin, the_user
from .ui_forms import key_form, token_form

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


def tokens_section(user: Any, admin: bool) -> dict[str, Any]:
    """The user's tokens and the form to make one; for an administrator, the
    API keys and their form too."""
    st = state()
    tokens = st.service.list(st.users.user_id(user), kinds=PERSONAL_KINDS, include_inactive=True)
    context: dict[str, Any] = {
        "tokens": rows_for(tokens, uses=recent_uses.for_tokens(st.db.session, st.models, [t.id for t in tokens])),
        "token_form": token_form(st.settings, formdata=None),
    }
    if admin:
        keys = st.service.list(None, kinds=(KEY,), include_inactive=True)
        owners = {}
        for owner_id in {info.user_id for info in keys}:
            owner = st.users.get(owner_id)
            owners[owner_id] = (st.users.profile(owner).get("username") or str(owner_id)) if owner else str(owner_id)
        context["keys"] = rows_for(keys, owners=owners)
        context["key_form"] = key_form(st.settings, formdata=None)
    return context


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
        return page(status=400, token_form=form)
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
        return page(status=400, key_form=form)
    owner = st.users.find_by_login(form.username.data.strip())
    if owner is None:
        form.username.errors.append("No user has this username.")
        return page(status=400, key_form=form)
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


def register(blueprint: PageBlueprint) -> None:
    blueprint.add_section(tokens_section)
    blueprint.add_url_rule("", "tokens", tokens)
    blueprint.add_url_rule("/create", "create_token", create_token, methods=["POST"])
    blueprint.add_url_rule("/<token_id>/revoke", "revoke_token", revoke_token, methods=["GET", "POST"])
    blueprint.add_url_rule("/keys/create", "create_key", create_key, methods=["POST"])
    blueprint.add_url_rule("/keys/<token_id>/revoke", "revoke_key", revoke_key, methods=["GET", "POST"])
