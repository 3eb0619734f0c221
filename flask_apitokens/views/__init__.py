"""The Flask layer: JSON routes (api.py) and, later, the token page (ui.py)."""
