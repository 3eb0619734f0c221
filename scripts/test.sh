#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them.
# Idempotent: a second run only runs the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the real-component tests use: OpenLDAP, a browser, a load tool, PgBouncer.
apt_packages=(slapd ldap-utils chromium wrk pgbouncer)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages (install them as root): ${missing[*]}" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,test,docs]' > .venv/install.log 2>&1 \
  || { cat .venv/install.log >&2; exit 1; }

# Use the machine's PostgreSQL when it answers and none was named.
if [ -z "${APITOKENS_TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  export APITOKENS_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi
if [ -z "${APITOKENS_TEST_REDIS_URL:-}" ] && command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  export APITOKENS_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
fi

exec .venv/bin/python -m pytest "$@"
