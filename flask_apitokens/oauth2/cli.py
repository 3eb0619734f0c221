"""``flask apitokens create-client / list-clients / delete-client``.

Attached to the extension's ``apitokens`` command group when imported.
"""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from ..cli import apitokens_cli, json_option, scope_option
from ..errors import APITokensError
from . import clients


@apitokens_cli.command("create-client")
# Required options are checked by hand: a missing one is exit status 1, like
# every other error of these commands (click's own check exits with 2).
@click.option("--name", help="The application's name, shown on the consent page (required).")
@click.option("--redirect-uri", "redirect_uris", multiple=True,
              help="A redirect URI, matched exactly (repeatable; at least one).")
@click.option("--public/--confidential", default=True,
              help="Public (no secret, PKCE required; the default) or confidential (gets a secret).")
@scope_option
@click.option("--client-id", default=None, help="A fixed client id (default: a random one).")
@json_option
@with_appcontext
def create_client(name: str | None, redirect_uris: tuple[str, ...], public: bool, scopes: tuple[str, ...],
                  client_id: str | None, as_json: bool) -> None:
    """Register an OAuth2 client; print its id (and, if confidential, its secret once)."""
    if not name:
        raise click.ClickException("Missing option '--name'.")
    if not redirect_uris:
        raise click.ClickException("Missing option '--redirect-uri' (give at least one).")
    try:
        made = clients.create_client(name=name, redirect_uris=list(redirect_uris), public=public,
                                     scopes=list(scopes), client_id=client_id)
    except APITokensError as error:
        raise click.ClickException(error.message) from None
    if as_json:
        click.echo(json.dumps({"client_id": made.client.client_id, "client_secret": made.client_secret}))
        return
    click.echo(f"client_id: {made.client.client_id}")
    if made.client_secret is not None:
        click.echo(f"client_secret: {made.client_secret}")
        click.echo("Copy the secret now: it is not stored and will not be shown again.", err=True)


@apitokens_cli.command("list-clients")
@json_option
@with_appcontext
def list_clients(as_json: bool) -> None:
    """List the registered OAuth2 clients (never their secrets)."""
    found = clients.list_clients()
    if as_json:
        click.echo(json.dumps({"clients": [clients.client_json(client) for client in found]}))
        return
    for client in found:
        kind = "public" if client.public else "confidential"
        click.echo(f"{client.client_id}  {kind:<12} {client.name}  scopes={' '.join(client.scope_list) or '-'}  "
                   f"redirect_uris={' '.join(client.redirect_uri_list)}")


@apitokens_cli.command("delete-client")
@click.argument("client_id", required=False)
@with_appcontext
def delete_client(client_id: str | None) -> None:
    """Delete an OAuth2 client and revoke every token it holds."""
    if not client_id:
        raise click.ClickException("Missing argument 'CLIENT_ID'.")
    if not clients.delete_client(client_id):
        raise click.ClickException(f"No OAuth2 client with id {client_id!r}.")
    click.echo(f"deleted: {client_id}")
