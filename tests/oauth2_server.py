"""Helpers for the OAuth2 server tests: the app served on 127.0.0.1 by a real
HTTP server in a thread, a logged-in browser (``requests.Session``) and the
consent page driven like a person would."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from werkzeug.serving import make_server

from flask_apitokens.oauth2 import clients

REDIRECT_URI = "http://127.0.0.1:9/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other"


@dataclass
class Served:
    app: Flask
    url: str
    port: int

    def login(self, username: str = "alice") -> requests.Session:
        browser = requests.Session()
        response = browser.post(self.url + "/login", data={"username": username}, timeout=10)
        assert response.status_code == 200, response.text
        return browser


@contextmanager
def serve(app: Flask) -> Iterator[Served]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(app, f"http://127.0.0.1:{server.server_port}", server.server_port)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def oauth_session(client: Any, secret: str | None = None, **options: Any) -> OAuth2Session:
    """Authlib's requests client for ``client``: PKCE S256, and for a public
    client no client authentication."""
    options.setdefault("redirect_uri", REDIRECT_URI)
    options.setdefault("code_challenge_method", "S256")
    if secret is None:
        options.setdefault("token_endpoint_auth_method", "none")
        options.setdefault("revocation_endpoint_auth_method", "none")
    return OAuth2Session(client.client_id, secret, **options)


def consent_form(page: str) -> tuple[str, dict[str, str]]:
    """The consent form's action and hidden fields, read from the HTML."""
    action = re.search(r'<form method="post" action="([^"]*)"', page)
    assert action is not None, page
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    return action.group(1).replace("&amp;", "&"), fields


def answer_consent(served: Served, browser: requests.Session, authorize_url: str, decision: str = "approve") -> str:
    """Open the consent page, press Allow or Deny; the redirect's Location."""
    page = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"), page.text)
    action, fields = consent_form(page.text)
    fields["apitokens_decision"] = decision
    answer = browser.post(urljoin(served.url, action), data=fields, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, (answer.status_code, answer.text)
    return answer.headers["Location"]


def authorize(served: Served, browser: requests.Session, session: OAuth2Session, **params: Any) -> tuple[str, str, str]:
    """(redirect Location, state, code_verifier) after approving."""
    verifier = generate_token(48)
    url, state = session.create_authorization_url(served.url + "/oauth/authorize", code_verifier=verifier, **params)
    return answer_consent(served, browser, url), state, verifier


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def register(public: bool = True, scopes: tuple[str, ...] = ("reports:read",), **options: Any) -> tuple[Any, Any]:
    """A client of the tests' host: (client row, secret or None)."""
    made = clients.create_client(name=options.pop("name", "Report Viewer"), public=public, scopes=list(scopes),
                                 redirect_uris=options.pop("redirect_uris", [REDIRECT_URI, OTHER_REDIRECT_URI]))
    return made.client, made.client_secret


def full_flow(served: Served, client: Any, secret: str | None = None, scope: str = "reports:read") -> tuple[Any, Any]:
    """Log in, approve, exchange the code with PKCE: (the client's session, its token)."""
    session = oauth_session(client, secret, scope=scope)
    location, _, verifier = authorize(served, served.login(), session)
    token = session.fetch_token(served.url + "/oauth/token", authorization_response=location, code_verifier=verifier)
    return session, token
