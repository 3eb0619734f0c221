"""The extension's own views: the JSON routes for the caller's tokens (api.py),
the leak reports (leaks.py), and the token page (page.py, its frame; ui.py,
tokens and keys). What every route shares is :mod:`flask_apitokens.web`."""
