"""Calls to a provider's API, through Authlib's requests client.

Each call is bounded: ``timeout`` seconds to connect, as long to start
answering, and a deadline of ``timeout`` for the whole body; at most
:data:`MAX_BODY` bytes are read; redirects are not followed (they would carry
the access token elsewhere). The provider's failures become our errors:
unreachable ``502 provider_unavailable``, too slow ``504 provider_timeout``,
a 5xx, a rate limit or a body that is not JSON ``502 provider_error``, a 401
``401 invalid_provider_token``. The access token is never logged.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from authlib.integrations.requests_client import OAuth2Session

from .. import errors
from .account import bad_answer, token_refused

log = logging.getLogger("flask_apitokens.providers")

#: Largest answer read from a provider, in bytes.
MAX_BODY = 1024 * 1024
_USER_AGENT = "flask-apitokens"


@dataclass(frozen=True)
class Reply:
    """A provider's answer: its status, and its JSON body when the status is 2xx."""

    status: int
    data: Any = None


def _timeout(provider: str) -> errors.GatewayTimeout:
    return errors.GatewayTimeout(f"The provider {provider!r} did not answer in time.", code="provider_timeout")


def _unreachable(provider: str) -> errors.BadGateway:
    return errors.BadGateway(f"The provider {provider!r} cannot be reached.", code="provider_unavailable")


def _is_read_timeout(exc: BaseException) -> bool:
    # requests wraps a read timeout met while streaming the body in a ConnectionError.
    return isinstance(exc, requests.Timeout) or any(
        isinstance(arg, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) for arg in exc.args
    )


def _chunks(response: requests.Response) -> Any:
    """The body as it arrives: ``read1`` returns what one read of the socket gives,
    so the deadline is checked while a slow body trickles in (``iter_content``
    would wait for a whole chunk)."""
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2
        yield from response.iter_content(16 * 1024)
        return
    while True:
        try:
            chunk = raw.read1(16 * 1024, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # as requests would wrap them
            raise requests.ConnectionError(exc) from None
        if not chunk:
            return
        yield chunk


class ProviderHTTP:
    """GET JSON from providers within ``timeout`` seconds per call."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = float(timeout)

    def get(self, provider: str, url: str, *, access_token: str | None) -> Reply:
        """GET ``url`` (with ``access_token`` as a Bearer token, when given).
        Raises for what no caller can use: no connection, a timeout, a 401, a
        redirect, a rate limit, a 5xx, a 2xx that is not JSON. Other 4xx come back
        as a :class:`Reply` without data for the caller to judge."""
        return self._call(provider, "GET", url, access_token=access_token)

    def post_as_client(self, provider: str, url: str, client: tuple[str, str] | None, *,
                       form: dict[str, str] | None = None, json_body: dict[str, str] | None = None) -> Reply:
        """POST to ``url`` authenticated as this site's OAuth client (HTTP Basic
        ``client``, when given). A 401 or 403 then means the provider refused
        the site's client credentials: a configuration error (502), not the user's."""
        return self._call(provider, "POST", url, access_token=None, client=client, form=form, json_body=json_body)

    def _call(self, provider: str, method: str, url: str, *, access_token: str | None,
              client: tuple[str, str] | None = None, form: dict[str, str] | None = None,
              json_body: dict[str, str] | None = None) -> Reply:
        token = {"access_token": access_token, "token_type": "bearer"} if access_token is not None else None
        deadline = time.monotonic() + self.timeout
        with OAuth2Session(token=token) as session:
            try:
                response = session.request(
                    method, url, withhold_token=access_token is None, timeout=(self.timeout, self.timeout),
                    stream=True, allow_redirects=False, auth=client, data=form, json=json_body,
                    headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
                )
            except requests.Timeout:
                log.warning("flask-apitokens: provider %s: no answer within %ss", provider, self.timeout)
                raise _timeout(provider) from None
            except requests.RequestException as exc:
                log.warning("flask-apitokens: provider %s unreachable: %s", provider, type(exc).__name__)
                raise _unreachable(provider) from None
            with response:
                return self._reply(provider, response, deadline, as_client=client is not None)

    def _reply(self, provider: str, response: requests.Response, deadline: float, *, as_client: bool = False) -> Reply:
        status = response.status_code
        if as_client and status in (401, 403):
            log.warning("flask-apitokens: provider %s refused this site's client credentials (HTTP %s)",
                        provider, status)
            raise bad_answer(provider, "that this site's client_id / client_secret are not valid")
        if status == 401:
            raise token_refused(provider)
        if status == 429 or (status == 403 and response.headers.get("X-RateLimit-Remaining") == "0"):
            log.warning("flask-apitokens: provider %s: rate limited", provider)
            raise errors.BadGateway(f"The provider {provider!r} is limiting our requests; try again later.",
                                    code="provider_error")
        if status >= 500 or 300 <= status < 400 or status < 200:
            log.warning("flask-apitokens: provider %s answered HTTP %s", provider, status)
            raise bad_answer(provider, f"with HTTP status {status}")
        if status >= 400:
            return Reply(status)

        body = self._read(provider, response, deadline)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            log.warning("flask-apitokens: provider %s answered with a body that is not JSON", provider)
            raise bad_answer(provider, "with something that is not JSON") from None
        return Reply(status, data)

    def _read(self, provider: str, response: requests.Response, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise bad_answer(provider, "with a body that is too large")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _chunks(response):
                size += len(chunk)
                if size > MAX_BODY:
                    raise bad_answer(provider, "with a body that is too large")
                if time.monotonic() > deadline:
                    raise _timeout(provider)
                chunks.append(chunk)
        except requests.RequestException as exc:
            if _is_read_timeout(exc):
                raise _timeout(provider) from None
            raise _unreachable(provider) from None
        return b"".join(chunks)
