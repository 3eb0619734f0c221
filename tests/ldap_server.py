"""A throwaway OpenLDAP server for the tests: Debian's ``slapd`` in a temp dir.

:func:`start_slapd` writes a ``slapd.conf`` (core, cosine and inetOrgPerson
schemas, one mdb database), loads an LDIF with ``slapadd`` and runs ``slapd -d 0``
in the foreground on a free loopback port, so the :class:`Slapd` object owns
the process and stops it. The ``slapd`` fixture starts one per test module;
tests that stop a directory start their own.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import pytest

from tests.helpers import need

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE_DN = "dc=example,dc=org"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "root-secret"
#: Every test user's password: a filter that matched someone else would bind.
USER_PASSWORD = "dir-secret"

SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath {modules}
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{base}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {dir}/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""


def ssha(password: str) -> str:
    """``{SSHA}`` as slappasswd makes it, without a subprocess per user."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def person_ldif(uid: str, cn: str, mail: str, password: str = USER_PASSWORD) -> str:
    return (
        f"dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\n"
        f"sn: {cn.split()[-1]}\ndisplayName: {cn}\nmail: {mail}\nuserPassword: {ssha(password)}\n\n"
    )


def group_ldif(cn: str, members: list[str]) -> str:
    lines = "".join(f"member: uid={uid},{PEOPLE_DN}\n" for uid in members)
    return f"dn: cn={cn},{GROUPS_DN}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}\n"


def default_ldif() -> str:
    """dora (developers), ada (admins, developers), carl (no group). Only ada
    starts with "a", so an unescaped ``a*`` would bind as her."""
    return (
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
        f"dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups\n\n"
        + person_ldif("dora", "Dora Directory", "dora@example.org")
        + person_ldif("ada", "Ada Admin", "ada@example.org")
        + person_ldif("carl", "Carl Plain", "carl@example.org")
        + group_ldif("developers", ["dora", "ada"])
        + group_ldif("admins", ["ada"])
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@dataclass
class Slapd:
    """One running slapd; ``config`` is what an app needs to use it."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "LDAP_HOST": "127.0.0.1",
            "LDAP_PORT": self.port,
            "LDAP_BASE_DN": BASE_DN,
            "LDAP_USER_DN": "ou=people",
            "LDAP_GROUP_DN": "ou=groups",
        }

    def run(self) -> None:
        began = time.monotonic()
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.directory / "slapd.conf"), "-h", f"ldap://127.0.0.1:{self.port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        self.started_in = time.monotonic() - began

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @contextmanager
    def admin(self) -> Iterator[ldap3.Connection]:
        """A connection bound as the root DN, to change entries during a test."""
        server = ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE, connect_timeout=5)
        conn = ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, raise_exceptions=True, receive_timeout=5)
        conn.bind()
        try:
            yield conn
        finally:
            conn.unbind()

    def add_person(self, uid: str, cn: str, mail: str, password: str = USER_PASSWORD) -> str:
        dn = f"uid={uid},{PEOPLE_DN}"
        with self.admin() as conn:
            conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": cn, "sn": cn.split()[-1], "displayName": cn,
                                              "mail": mail, "userPassword": ssha(password)})
        return dn

    def replace(self, dn: str, **attributes: Any) -> None:
        with self.admin() as conn:
            conn.modify(dn, {name: [(ldap3.MODIFY_REPLACE, [value])] for name, value in attributes.items()})

    def rename(self, dn: str, new_rdn: str) -> None:
        with self.admin() as conn:
            conn.modify_dn(dn, new_rdn)

    def add_member(self, group_cn: str, uid: str) -> None:
        with self.admin() as conn:
            conn.modify(f"cn={group_cn},{GROUPS_DN}", {"member": [(ldap3.MODIFY_ADD, [f"uid={uid},{PEOPLE_DN}"])]})

    def delete_member(self, group_cn: str, uid: str) -> None:
        with self.admin() as conn:
            conn.modify(f"cn={group_cn},{GROUPS_DN}",
                        {"member": [(ldap3.MODIFY_DELETE, [f"uid={uid},{PEOPLE_DN}"])]})


def start_slapd(directory: Path, ldif: str | None = None) -> Slapd:
    """Configure, load and start a slapd in ``directory`` (skips when slapd is missing)."""
    if not (os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK) and (MODULE_DIR / "back_mdb.so").exists()):
        need("slapd is not installed: apt-get install -y slapd ldap-utils")
    (directory / "data").mkdir(parents=True)
    (directory / "slapd.conf").write_text(SLAPD_CONF.format(
        schema=SCHEMA_DIR, dir=directory, modules=MODULE_DIR, base=BASE_DN, rootdn=ROOT_DN,
        rootpw=ssha(ROOT_PASSWORD),
    ))
    (directory / "data.ldif").write_text(ldif if ldif is not None else default_ldif())
    subprocess.run([SLAPADD, "-q", "-f", str(directory / "slapd.conf"), "-l", str(directory / "data.ldif")],
                   check=True, capture_output=True)
    server = Slapd(directory, free_port())
    server.run()
    return server


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One slapd with :func:`default_ldif` for the whole test module."""
    directory = tmp_path_factory.mktemp("slapd")
    server = start_slapd(directory)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A slapd for one test, which may stop it."""
    server = start_slapd(tmp_path / "slapd")
    yield server
    server.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung directory)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    listener.settimeout(0)
    yield int(listener.getsockname()[1])
    while True:  # close what the kernel accepted on our behalf
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        accepted.append(conn)
    for conn in accepted:
        conn.close()
    listener.close()
