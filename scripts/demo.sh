#!/usr/bin/env bash
# Set up and run the demo site on http://127.0.0.1:5000 (SQLite in instance/).
# Log in as demo / demo-password (made on the first run; an administrator).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all]' > .venv/install.log 2>&1 \
  || { cat .venv/install.log >&2; exit 1; }
.venv/bin/flask --app example_app create-user demo --email demo@example.com --password demo-password \
  --admin --organization "Demo Org" --if-missing
exec .venv/bin/flask --app example_app run "$@"
