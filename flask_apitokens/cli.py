"""``flask apitokens ...``: manage tokens from the command line.

Every ``create-*`` command takes ``--json`` and then prints exactly one JSON
object. A missing or unknown user is a clear error with exit status 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask.cli import with_appcontext

from .errors import APITokensError
from .service import DEFAULT, KEY, PERSONAL_KINDS, IssuedToken, iso
from .state import state


def find_user(name: str | None) -> Any:
    if not name:
        # Not click's required=True: that exits with 2; a missing user is exit 1 like an unknown one.
        raise click.ClickException("--user is required: the username or email of the owner.")
    user = state().users.find_by_login(name)
    if user is None:
        raise click.ClickException(f"No user named {name!r}.")
    return user


def print_issued(issued: IssuedToken, as_json: bool, secret_field: str = "token") -> None:
    data = {"id": issued.info.id, secret_field: issued.token, "expiresOn": iso(issued.info.expires_at),
            "scopes": sorted(issued.info.scopes)}
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"{secret_field}: {issued.token}")
    click.echo(f"id: {issued.info.id}  expires: {data['expiresOn'] or 'never'}")
    click.echo("Copy it now: it is not stored and will not be shown again.", err=True)


def issue_from_cli(user_name: str | None, kind: str, name: str, scopes: tuple[str, ...],
                   expires_in: int | None) -> IssuedToken:
    user = find_user(user_name)
    try:
        return state().service.issue(user, via="cli", kind=kind, name=name, scopes=scopes,
                                      expires_in=DEFAULT if expires_in is None else expires_in)
    except APITokensError as error:
        raise click.ClickException(error.message) from None


scope_option = click.option("--scope", "scopes", multiple=True, help="A scope to grant (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group("apitokens")
def apitokens_cli() -> None:
    """Manage API tokens, keys and OAuth2 clients."""


@apitokens_cli.command("create-token")
@click.option("--user", "user_name", help="Username (or email) of the owner (required).")
@click.option("--name", default="", help="A name to recognize the token by.")
@scope_option
@click.option("--expires-in", type=click.IntRange(min=1), help="Seconds until it expires.")
@json_option
@with_appcontext
def create_token(user_name: str | None, name: str, scopes: tuple[str, ...], expires_in: int | None,
                 as_json: bool) -> None:
    """Make an API token for a user and print it once."""
    print_issued(issue_from_cli(user_name, "token", name, scopes, expires_in), as_json)


@apitokens_cli.command("create-key")
@click.option("--user", "user_name", help="Username (or email) of the owner, a person or a service account (required).")
@click.option("--name", default="", help="A name to recognize the key by.")
@scope_option
@click.option("--expires-in", type=click.IntRange(min=1), help="Seconds until it expires (default: never).")
@json_option
@with_appcontext
def create_key(user_name: str | None, name: str, scopes: tuple[str, ...], expires_in: int | None,
               as_json: bool) -> None:
    """Make an API key (sent as "Authorization: key ...") and print it once."""
    print_issued(issue_from_cli(user_name, KEY, name, scopes, expires_in), as_json, secret_field="key")


@apitokens_cli.command("list-keys")
@click.option("--user", "user_name", help="Only this user's keys.")
@click.option("--all", "include_inactive", is_flag=True, help="Include revoked and expired ones.")
@json_option
@with_appcontext
def list_keys(user_name: str | None, include_inactive: bool, as_json: bool) -> None:
    """List API keys (never their secrets)."""
    _print_list(user_name, (KEY,), include_inactive, as_json, "keys")


@apitokens_cli.command("list")
@click.option("--user", "user_name", help="Only this user's credentials.")
@click.option("--all", "include_inactive", is_flag=True, help="Include revoked and expired ones.")
@json_option
@with_appcontext
def list_tokens(user_name: str | None, include_inactive: bool, as_json: bool) -> None:
    """List tokens and keys (never their secrets)."""
    _print_list(user_name, (*PERSONAL_KINDS, KEY), include_inactive, as_json, "tokens")


def _print_list(user_name: str | None, kinds: tuple[str, ...], include_inactive: bool, as_json: bool,
                json_field: str) -> None:
    st = state()
    user_id = st.users.user_id(find_user(user_name)) if user_name else None
    infos = st.service.list(user_id, kinds=kinds, include_inactive=include_inactive)
    owners: dict[Any, str] = {}

    def owner(user_id: Any) -> str:
        # The owner's name, as an administrator knows them, not the row id.
        if user_id not in owners:
            user = st.users.get(user_id)
            profile = st.users.profile(user) if user is not None else {}
            owners[user_id] = str(profile.get("username") or profile.get("email") or f"#{user_id}")
        return owners[user_id]

    if as_json:
        click.echo(json.dumps({json_field: [dict(info.to_json(), user_id=info.user_id, owner=owner(info.user_id))
                                            for info in infos]}))
        return

    rows = [(info.id, info.kind, info.via, owner(info.user_id), iso(info.expires_at) or "never",
             " ".join(sorted(info.scopes)) or "-", info.name or "-") for info in infos]
    header = ("ID", "KIND", "VIA", "OWNER", "EXPIRES", "SCOPES", "NAME")
    if not rows:
        click.echo(f"No {json_field}.")
        return
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1])


@apitokens_cli.command("revoke")
@click.argument("token_id")
@with_appcontext
def revoke(token_id: str) -> None:
    """Revoke a token or key by its id."""
    revoked = state().service.revoke([token_id], reason="cli")
    if not revoked:
        raise click.ClickException(f"No live token or key with id {token_id!r}.")
    click.echo(f"revoked: {' '.join(revoked)}")


@apitokens_cli.command("purge-expired")
@click.option("--revoked-older-than-days", default=0, type=click.IntRange(min=0),
              help="Keep revoked credentials this many days (for audits).")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Rows deleted per transaction; smaller batches hold shorter locks.")
@with_appcontext
def purge_expired(revoked_older_than_days: int, batch_size: int) -> None:
    """Delete expired and revoked credentials; warn owners of those expiring soon.

    Deletes in batches, one transaction each, so a busy database is never
    locked for long. On a terminal it shows a progress bar; otherwise it prints
    the counts only.
    """
    service = state().service
    warned = service.notify_expiring()
    options: dict[str, Any] = {"revoked_older_than_days": revoked_older_than_days, "batch_size": batch_size}
    if sys.stdout.isatty():
        total = service.count_purgeable(revoked_older_than_days=revoked_older_than_days)
        with click.progressbar(length=total, label="Purging", show_pos=True) as bar:
            purged = service.purge_expired(progress=bar.update, **options)
    else:
        purged = service.purge_expired(**options)
    click.echo(f"purged: {purged}  expiring-soon warnings sent: {len(warned)}")


@apitokens_cli.command("notify-expiring")
@with_appcontext
def notify_expiring() -> None:
    """Send the token_expiring signal for credentials that expire soon (run daily)."""
    click.echo(f"expiring-soon warnings sent: {len(state().service.notify_expiring())}")
