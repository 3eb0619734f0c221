"""Registering, listing and deleting OAuth2 clients (used by the CLI and the admin page)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from .. import crypto, errors
from ..service import OAUTH2, REFRESH, iso
from ..state import state as current_state


@dataclass(frozen=True)
class NewClient:
    """A registered client; ``client_secret`` is its plain secret, shown once (None: public)."""

    client: Any
    client_secret: str | None


def check_redirect_uri(uri: Any) -> str:
    """An absolute http(s) URI without a fragment (RFC 6749 3.1.2)."""
    if (not isinstance(uri, str) or not uri or len(uri) > 2000
            or any(c.isspace() or not c.isprintable() for c in uri)):  # NUL and control characters too
        raise errors.BadRequest(f"Not a valid redirect URI: {uri!r}.", code="invalid_redirect_uri")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment or "#" in uri:
        raise errors.BadRequest(f"A redirect URI must be an absolute http(s) URL without a fragment: {uri!r}.",
                                code="invalid_redirect_uri")
    return uri


def create_client(*, name: str, redirect_uris: list[str], public: bool, scopes: list[str] | tuple[str, ...] = (),
                  client_id: str | None = None) -> NewClient:
    """Register a client. A confidential client gets a secret, returned once and
    stored as a keyed digest. Raises BadRequest for bad input."""
    state = current_state()
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise errors.BadRequest("A client needs a name of at most 200 characters.", code="invalid_field")
    if not redirect_uris:
        raise errors.BadRequest("A client needs at least one redirect URI.", code="invalid_redirect_uri")
    uris = list(dict.fromkeys(check_redirect_uri(uri) for uri in redirect_uris))
    scope_list = state.service.check_scopes(scopes)
    client_id = client_id or crypto.random_string(24)
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 64 or not client_id.isascii():
        raise errors.BadRequest("A client id is up to 64 ASCII characters.", code="invalid_field")
    models = state.oauth2_models
    exists = errors.BadRequest(f"A client with id {client_id!r} exists already.", code="client_exists")
    if state.db.session.get(models.Client, client_id) is not None:
        raise exists
    secret = None if public else secrets.token_urlsafe(32)
    client = models.Client(
        client_id=client_id, name=name.strip(), public=public,
        secret_digest=None if secret is None else state.service.hasher.digest(client_id, secret),
        redirect_uris="\n".join(uris), scopes=" ".join(scope_list),
    )
    state.db.session.add(client)
    try:
        state.db.session.flush()
    except sa.exc.IntegrityError:
        # Another process registered the same id since the check above (gunicorn
        # workers starting the demo at once): the same answer as that check.
        state.db.session.rollback()
        raise exists from None
    state.service.commit()
    return NewClient(client, secret)


def list_clients() -> list[Any]:
    state = current_state()
    Client = state.oauth2_models.Client
    return list(state.db.session.execute(sa.select(Client).order_by(Client.created_at, Client.client_id)).scalars())


def could_be_client_id(client_id: Any) -> bool:
    """Client ids are up to 64 printable ASCII characters (create_client); anything
    else is not looked up: PostgreSQL refuses a NUL in a string outright."""
    return (isinstance(client_id, str) and 0 < len(client_id) <= 64
            and client_id.isascii() and client_id.isprintable())


def get_client(client_id: str) -> Any | None:
    state = current_state()
    if not could_be_client_id(client_id):
        return None
    return state.db.session.get(state.oauth2_models.Client, client_id)


def client_json(client: Any) -> dict[str, Any]:
    return {"client_id": client.client_id, "name": client.name, "public": bool(client.public),
            "redirect_uris": client.redirect_uri_list, "scopes": client.scope_list,
            "created_at": iso(client.created_at)}


def revoke_client_tokens(client_id: str, *, user_id: Any = None, reason: str = "client") -> list[str]:
    """Revoke every live access and refresh token of ``client_id`` (of ``user_id``)."""
    state = current_state()
    T = state.models.Token
    query = sa.select(T.id).where(T.client_id == client_id, T.kind.in_((OAUTH2, REFRESH)), T.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(T.user_id == user_id)
    ids = list(state.db.session.execute(query).scalars())
    return state.service.revoke(ids, user_id=user_id, reason=reason)


def delete_client(client_id: str) -> bool:
    """Delete a client, its codes and grants, after revoking its tokens. False if unknown."""
    state = current_state()
    client = get_client(client_id)
    if client is None:
        return False
    revoke_client_tokens(client_id, reason="client_deleted")
    models = state.oauth2_models
    session = state.db.session
    session.execute(sa.delete(models.Code).where(models.Code.client_id == client_id))
    session.execute(sa.delete(models.Grant).where(models.Grant.client_id == client_id))
    session.delete(client)
    state.service.commit()
    return True
