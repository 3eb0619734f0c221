"""A host module for ``mypy --strict`` (tests/test_typing.py runs it; pytest
does not collect it): decorated views keep their own types, bare and called,
and ``current_token`` is Optional."""

from __future__ import annotations

from flask import Flask

from flask_apitokens import (
    TokenInfo,
    current_token,
    get_current_token,
    key_required,
    login_or_token_required,
    token_required,
)

app = Flask(__name__)


@app.get("/bare")
@token_required
def bare() -> dict[str, str]:
    return {"token": current_token.id if current_token else ""}


@app.get("/called/<int:number>")
@token_required(scopes=["reports:read"])
def called(number: int) -> dict[str, int]:
    return {"number": number}


@app.get("/either")
@login_or_token_required
def either() -> str:
    token: TokenInfo | None = get_current_token()
    return token.name if token is not None else "a session"


@app.get("/either-scoped")
@login_or_token_required(scopes="reports:read")
def either_scoped() -> list[str]:
    return sorted(current_token.scopes) if current_token else []


@key_required
def key_bare(name: str) -> bytes:
    return name.encode()


@key_required(scopes=["reports:write"])
def key_called(name: str, *, loud: bool = False) -> str:
    return name.upper() if loud else name


# The decorated functions have the signatures written above, not Any.
first: dict[str, str] = bare()
second: dict[str, int] = called(3)
third: str = either()
fourth: list[str] = either_scoped()
fifth: bytes = key_bare("x")
sixth: str = key_called("x", loud=True)
