"""A Sphinx directive that builds the configuration reference from the ``#:``
comments of ``flask_apitokens/config.py``, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

CONFIG = Path(__file__).resolve().parent.parent / "flask_apitokens" / "config.py"


def config_entries() -> list[tuple[str, str, str]]:
    """(key, default as written, description) for each key in DEFAULTS."""
    entries, comment = [], []
    for line in CONFIG.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
        elif stripped.startswith('"APITOKENS_') and comment:
            key, _, default = stripped.partition(":")
            entries.append((key.strip('"'), default.strip().rstrip(","), " ".join(comment)))
            comment = []
        elif comment and not stripped.startswith("#"):
            comment = []
    return entries


#: Keys whose value is a number of seconds, shown with a readable form beside it.
_SECONDS = ("_EXPIRES_IN", "_LIFETIME", "_GRACE", "_INTERVAL", "_TIMEOUT")
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def readable(key: str, value: Any) -> str:
    """The default as its value (``2592000``, not ``30 * DAY``), with "(30 days)" for a duration."""
    shown = f"``{value!r}``"
    if isinstance(value, int) and not isinstance(value, bool) and value and key.endswith(_SECONDS):
        size, unit = next((size, unit) for size, unit in _UNITS if value % size == 0)
        count = value // size
        shown += f" ({count} {unit}{'s' if count != 1 else ''})"
    elif key.endswith("_DAYS") and isinstance(value, int):
        shown += f" ({value} day{'s' if value != 1 else ''})"
    return shown


class ConfigReference(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        from flask_apitokens.config import DEFAULTS

        lines: list[str] = []
        for key, _written, text in config_entries():
            lines += [f".. data:: {key}", "", f"   Default: {readable(key, DEFAULTS[key])}", "", f"   {text}", ""]
        container = nodes.section()
        self.state.nested_parse(StringList(lines, source=str(CONFIG)), self.content_offset, container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("apitokens-config", ConfigReference)
    return {"parallel_read_safe": True}
