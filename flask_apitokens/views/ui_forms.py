"""The token page's forms (Flask-WTF): every one carries a CSRF token. The
OAuth2 client form, built on these, is :mod:`flask_apitokens.oauth2.admin_forms`.

Choices (scopes, expiries) depend on the application's settings, so they are
filled in per request by :func:`token_form` and :func:`key_form`.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..config import DAY, Settings

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
