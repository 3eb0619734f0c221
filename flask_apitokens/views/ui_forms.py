"""The token page's forms (Flask-WTF): every one carries a CSRF token.

Choices (scopes, expiries) depend on the application's settings, so they are
filled in per request by :func:`token_form` and :func:`key_form`.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from .. import errors
from ..config import DAY, Settings
from ..oauth2.clients import check_redirect_uri

#: The value of the "never expires" choice (API keys, or tokens when there is no cap).
NEVER = 0


class PageForm(FlaskForm):
    class Meta:
        # Always on, even where the host turns Flask-WTF's CSRF off (WTF_CSRF_ENABLED=False)
        # for its own forms: these forms make and revoke credentials.
        csrf = True


def printable(form: Any, field: Any) -> None:
    """No control characters (PostgreSQL refuses NUL in text; the rest only confuses)."""
    if field.data and any(ord(c) < 32 or ord(c) == 127 for c in field.data):
        raise ValidationError("Use letters, digits, spaces and punctuation only.")


class ScopeCheckboxes(SelectMultipleField):
    """Scopes as a list of check boxes, each with its own <label>."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class TokenForm(PageForm):
    name = StringField("Name", validators=[DataRequired("Give the token a name."), Length(max=200), printable],
                       render_kw={"autocomplete": "off", "maxlength": 200})
    scopes = ScopeCheckboxes("Scopes", choices=[], validate_choice=True)
    expires_in_days = SelectField("Expires after", coerce=int, choices=[])
    submit = SubmitField("Create token")


class KeyForm(TokenForm):
    username = StringField("For user", validators=[DataRequired("Name the key's owner."), Length(max=320), printable],
                           render_kw={"autocomplete": "off"})
    submit = SubmitField("Create API key")


class ConfirmForm(PageForm):
    """The second step of revoking or deleting: only its CSRF token counts (each
    page labels the button)."""

    submit = SubmitField("Confirm")


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


def expiry_choices(settings: Settings, *, capped: bool) -> list[tuple[int, str]]:
    """APITOKENS_UI_EXPIRY_CHOICES (days) within APITOKENS_MAX_LIFETIME when
    ``capped``; the cap itself when no choice fits; "never" when nothing caps."""
    cap = settings["MAX_LIFETIME"] if capped else None
    days = sorted({int(d) for d in settings["UI_EXPIRY_CHOICES"] if isinstance(d, int) and d > 0})
    if cap is not None:
        days = [d for d in days if d * DAY <= cap] or [max(1, cap // DAY)]
    choices: list[tuple[int, str]] = [(d, f"{d} day" + ("s" if d != 1 else "")) for d in days]
    if cap is None:
        choices.append((NEVER, "Never"))
    return choices


def _fill(form: Any, settings: Settings, *, capped: bool, method: str) -> Any:
    form.scopes.choices = [(name, name) for name in sorted(settings.scopes)]
    form.scope_descriptions = dict(settings.scopes)
    form.expires_in_days.choices = expiry_choices(settings, capped=capped)
    if form.expires_in_days.data is None:
        # Default: the method's expiry setting when offered, else the longest offered.
        default_days = (settings.expiry_for(method) or 0) // DAY
        offered = [value for value, _ in form.expires_in_days.choices]
        form.expires_in_days.data = default_days if default_days in offered else offered[-1]
    return form


def token_form(settings: Settings, **kwargs: Any) -> TokenForm:
    return _fill(TokenForm(prefix="token", **kwargs), settings, capped=True, method="cli")  # type: ignore[no-any-return]


def key_form(settings: Settings, **kwargs: Any) -> KeyForm:
    # API keys are exempt from APITOKENS_MAX_LIFETIME.
    return _fill(KeyForm(prefix="key", **kwargs), settings, capped=False, method="key")  # type: ignore[no-any-return]


def client_form(settings: Settings, **kwargs: Any) -> ClientForm:
    form = ClientForm(prefix="client", **kwargs)
    form.client_type.choices = CLIENT_TYPES
    form.scopes.choices = [(name, name) for name in sorted(settings.scopes)]
    form.scope_descriptions = dict(settings.scopes)
    return form
