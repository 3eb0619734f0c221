"""The form an administrator registers an OAuth2 client with, on the token page
(built on :mod:`flask_apitokens.views.ui_forms`, so it carries a CSRF token).
"""

from __future__ import annotations

from typing import Any

from wtforms import RadioField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from .. import errors
from ..config import Settings
from ..views.ui_forms import PageForm, ScopeCheckboxes, printable
from .clients import check_redirect_uri

#: At most this many redirect URIs per client (one a line in the form).
MAX_REDIRECT_URIS = 20


def redirect_uri_lines(text: str | None) -> list[str]:
    # Split on newlines only: other characters str.splitlines() breaks on are refused as control characters.
    return [line.strip() for line in (text or "").split("\n") if line.strip()]


def redirect_uris_valid(form: Any, field: Any) -> None:
    """One absolute http(s) URI a line, without a fragment (the same check as the CLI's)."""
    uris = redirect_uri_lines(field.data)
    if not uris:
        raise ValidationError("Give at least one redirect URI.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise ValidationError(f"Give at most {MAX_REDIRECT_URIS} redirect URIs.")
    for uri in uris:
        try:
            check_redirect_uri(uri)
        except errors.BadRequest:
            raise ValidationError(f"Not an absolute http(s) URL without a fragment: {uri[:100]!r}.") from None


class ClientForm(PageForm):
    """An administrator registers an OAuth2 client."""

    name = StringField("Application name", validators=[DataRequired("Give the application a name."), Length(max=200),
                                                       printable],
                       render_kw={"autocomplete": "off", "maxlength": 200})
    redirect_uris = TextAreaField("Redirect URIs (one a line)",
                                  validators=[Length(max=MAX_REDIRECT_URIS * 2001), redirect_uris_valid],
                                  render_kw={"rows": 3, "spellcheck": "false", "autocomplete": "off"})
    client_type = RadioField("Client type", default="confidential", validate_choice=True, choices=[])
    scopes = ScopeCheckboxes("Scopes it may ask for", choices=[], validate_choice=True)
    submit = SubmitField("Register client")


#: Set per form, like the other choices (WTForms warns about tuples given to the field itself).
CLIENT_TYPES = [
    ("confidential", "Confidential: runs on a server and keeps a client secret"),
    ("public", "Public: a browser or mobile app without a secret (PKCE required)"),
]


def client_form(settings: Settings, **kwargs: Any) -> ClientForm:
    form = ClientForm(prefix="client", **kwargs)
    form.client_type.choices = CLIENT_TYPES
    form.scopes.choices = [(name, name) for name in sorted(settings.scopes)]
    form.scope_descriptions = dict(settings.scopes)
    return form
