"""blinker signals, sent with the Flask application as sender.

Receivers get keyword arguments; a token is described by a :class:`~flask_apitokens.service.TokenInfo`
(never its secret).

- ``token_issued``: ``token`` (TokenInfo), ``user_id``, ``via``.
- ``token_used``: ``token`` (TokenInfo). Sent when the last-used time is written,
  so at most once per token per ``APITOKENS_LAST_USED_INTERVAL``.
- ``token_revoked``: ``token_ids`` (list: the credentials named and their
  lineage, see :meth:`~flask_apitokens.service.TokenService.revoke`), ``user_id``,
  ``reason`` (e.g. ``revoked``, ``logout_everywhere``, ``rotation_reuse`` when a
  rotated token was rotated again, ``refresh_reuse``, ``code_replay``, ``app_revoked``).
- ``token_expiring``: ``token`` (TokenInfo), ``user_id``; sent once per token,
  ``APITOKENS_EXPIRY_WARNING_DAYS`` before it expires, by ``flask apitokens notify-expiring``
  (and by ``purge-expired``), so the host can tell the owner. Only for a token,
  key or user-token whose whole lifetime is longer than that window (a 24-hour
  user-token or a 7-day token is not warned of), and never for a revoked one or
  one that was rotated (its grace period ends it; the new token is warned of in
  its own time).
- ``credential_leaked``: ``token`` (TokenInfo of the credential, as it was before
  it was revoked), ``user_id`` (its owner), ``reporter`` (the client address of
  the report), ``source`` (``report`` for ``POST /api/credentials/revoke``,
  ``secret_scanning`` for GitHub's partner endpoint) and ``url`` (where it was
  found, when the reporter says; else None). Sent once per live credential
  reported, after its revocation is committed, so the host can tell its owner.
- ``authentication_failed``: ``method`` (e.g. ``token``, ``userpass``), ``reason``
  (a code), ``login`` (the account name tried, if any; never a password). A
  credential that is not in the extension's format is reported (``malformed``)
  only when one of the extension's views refuses it, not when Flask-Login's
  request loader hands it on to the host's own loader.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

token_issued = _signals.signal("apitokens.token-issued")
token_used = _signals.signal("apitokens.token-used")
token_revoked = _signals.signal("apitokens.token-revoked")
token_expiring = _signals.signal("apitokens.token-expiring")
authentication_failed = _signals.signal("apitokens.authentication-failed")
credential_leaked = _signals.signal("apitokens.credential-leaked")
