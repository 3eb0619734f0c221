"""A throwaway PgBouncer for the tests: Debian's ``pgbouncer`` in transaction
pooling mode, in front of the PostgreSQL named by APITOKENS_TEST_DATABASE_URL.

PgBouncer refuses to run as root, so it runs as ``postgres`` (its ini, auth
file, log and pid in a temp dir that user owns), in the foreground on a free
loopback port, so the fixture owns the process. Its ``[databases]`` holds the
test database under the same name; its pool is small (two server connections)
so that clients take turns on the same server connections, as they do in
production, and anything that depends on a session's state (a named prepared
statement) breaks the way it would there. ``start_pgbouncer(over_sockets=True)``
listens on a Unix socket in its temp dir too, and reaches PostgreSQL through
the server's own Unix socket (:func:`postgres_socket_dir`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import POSTGRES_URL, need

PGBOUNCER = "/usr/sbin/pgbouncer"

INI = """\
[databases]
{name} = host={host} port={port} dbname={name}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir = {socket_dir}
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
server_reset_query =
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    def __init__(self, process: subprocess.Popen[bytes], directory: Path, url: str, socket_url: str | None) -> None:
        self.process, self.directory, self.url = process, directory, url
        #: Through its Unix socket (``over_sockets`` only).
        self.socket_url = socket_url

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_socket_dir() -> str:
    """The directory of the test PostgreSQL's Unix socket, as the server says."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            directories = conn.exec_driver_sql("SHOW unix_socket_directories").scalar() or ""
    finally:
        engine.dispose()
    found = next((d.strip() for d in directories.split(",") if d.strip().startswith("/")), None)
    if found is None:
        need("the test PostgreSQL listens on no Unix socket (unix_socket_directories)")
    return str(found)


def socket_url(url: str, directory: str, port: int) -> str:
    """``url`` reaching the same database through the Unix socket in ``directory``."""
    return sa.make_url(url).set(host=None, port=None, query={"host": directory, "port": str(port)}) \
        .render_as_string(hide_password=False)


def start_pgbouncer(*, over_sockets: bool = False) -> PgBouncer:
    if not POSTGRES_URL:
        need("set APITOKENS_TEST_DATABASE_URL to a PostgreSQL database for the PgBouncer tests")
    if not os.path.exists(PGBOUNCER):
        need("install Debian's pgbouncer (apt-get install -y --no-install-recommends pgbouncer) for these tests")
    try:
        postgres = pwd.getpwnam("postgres")
    except KeyError:
        need("the PgBouncer tests run it as the 'postgres' user, which this machine lacks")
    target = sa.make_url(POSTGRES_URL)
    server_host = postgres_socket_dir() if over_sockets else target.host or "127.0.0.1"
    directory = Path(tempfile.mkdtemp(prefix="apitokens-pgbouncer-"))
    listen = free_port()
    (directory / "users.txt").write_text(f'"{target.username or "postgres"}" ""\n')
    (directory / "pgbouncer.ini").write_text(INI.format(name=target.database, host=server_host,
                                                        port=target.port or 5432, listen=listen, dir=directory,
                                                        socket_dir=directory if over_sockets else ""))
    for path in (directory, *directory.iterdir()):
        os.chown(path, postgres.pw_uid, postgres.pw_gid)
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen([PGBOUNCER, str(directory / "pgbouncer.ini")], user=postgres.pw_uid,
                                   group=postgres.pw_gid, extra_groups=[], stdout=subprocess.DEVNULL, stderr=stderr)
    url = target.set(host="127.0.0.1", port=listen).render_as_string(hide_password=False)
    bouncer = PgBouncer(process, directory, url, socket_url(url, str(directory), listen) if over_sockets else None)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", listen), timeout=0.5):
                return bouncer
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            bouncer.stop()
            error = (directory / "stderr.log").read_text(errors="replace")
            pytest.fail(f"pgbouncer did not start: {error}\n{bouncer.log()}")
        time.sleep(0.05)
