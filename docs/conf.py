"""Sphinx configuration for flask-apitokens."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

project = "flask-apitokens"
author = "The flask-apitokens developers"
extensions = ["sphinx.ext.autodoc", "configref"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_static_path = ["_static"]
exclude_patterns = ["_build"]
nitpicky = False
