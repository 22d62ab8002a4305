"""PostgreSQL from Debian's package (installed, or unpacked into the cache by ``builds``), for SQL catalogs.

``initdb`` makes a cluster in the workdir whose only access rule is password (SCRAM) authentication over TCP from
127.0.0.1; ``postgres`` listens there on a free port, without a Unix socket. PostgreSQL refuses to run as root, so
as root both run as an unprivileged user (``postgres``, else ``nobody``) that owns the data folder, keeping one
capability, to read files and search folders (``CAP_DAC_READ_SEARCH``): the workdir under pytest's private temp
folder and the cache under root's home keep their modes, while every write still needs ownership.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from e2e.stack import builds
from e2e.stack.process import Process, ServerFailed, free_port, spawn, tail, wait_ready

_USER = "pyrostore"
_DATABASE = "pyrostore"
_HBA = "# TYPE  DATABASE  USER  ADDRESS       METHOD\nhost    all       all   127.0.0.1/32  scram-sha-256\n"
# A throwaway test cluster: durability is not wanted, speed is.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@dataclass
class PostgresServer:
    """A running PostgreSQL server with one database, reached over TCP with a password."""

    host: str
    port: int
    user: str
    password: str
    database: str
    process: Process
    programs: builds.Programs

    @property
    def url(self) -> str:
        """A libpq connection URL (``postgresql://user:password@host:port/database``), as psql and psycopg take."""
        return self.sqlalchemy_url(driver=None)

    @property
    def jdbc_url(self) -> str:
        """A JDBC URL (``jdbc:postgresql://host:port/database``; user and password go separately), as Java's
        clients (Iceberg's JdbcCatalog) take."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{quote(self.database, safe='')}"

    def sqlalchemy_url(self, driver: str | None = "psycopg2") -> str:
        """A SQLAlchemy URL with ``driver`` (``psycopg2``, locked through pyiceberg's sql-postgres extra, by default;
        ``psycopg``, ``pg8000``; None: SQLAlchemy's default)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def psql(self, sql: str, database: str | None = None, timeout: float = 60) -> list[list[str]]:
        """Run ``sql`` with Debian's psql client; return the rows it printed, each as a list of fields."""
        return run_psql(self.programs, self._url_for(database or self.database), sql, timeout)

    def _url_for(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + quote(database, safe="")

    def stop(self, grace: float = 30.0) -> None:
        """Shut the server down (SIGTERM to its process group: sessions end, then the postmaster) and wait."""
        self.process.stop(grace)


def start(workdir: Path, programs: builds.Programs | None = None) -> PostgresServer:
    """Make a cluster in ``workdir`` and start PostgreSQL on a free port; return once a database made for the
    tests accepts connections. ``programs`` defaults to :func:`builds.postgres`. Raises ServerFailed."""
    programs = programs or builds.postgres()
    workdir.mkdir(parents=True, exist_ok=True)
    data, log = workdir / "data", workdir / "postgres.log"
    data.mkdir(mode=0o700)
    password = secrets.token_hex(16)
    prefix = _unprivileged(data)
    _initdb(programs, prefix, data, password, workdir / "initdb.log")
    (data / "pg_hba.conf").write_text(_HBA)
    port = free_port()
    settings = [arg for key, value in _SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    command = [*prefix, str(programs.path("postgres")), "-D", str(data), "-p", str(port), *settings]
    proc = spawn("postgres", command, log, env=programs.env)
    server = PostgresServer("127.0.0.1", port, _USER, password, _DATABASE, proc, programs)
    try:
        wait_ready(proc, lambda: run_psql(programs, server._url_for("postgres"), "SELECT 1", timeout=5) == [["1"]])
        server.psql(f'CREATE DATABASE "{_DATABASE}"', database="postgres")
    except BaseException:
        proc.stop()
        raise
    return server


def run_psql(programs: builds.Programs, url: str, sql: str, timeout: float = 60) -> list[list[str]]:
    """Run ``sql`` on the database at ``url`` with psql (unaligned, tab-separated, stopping at the first error);
    return the rows printed. Raises ServerFailed naming psql's error."""
    command = [str(programs.path("psql")), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url]
    env = {**os.environ, **programs.env, "PGCONNECT_TIMEOUT": "5"}
    done = subprocess.run([*command, "-c", sql], capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise ServerFailed(f"psql failed ({done.returncode}) running {sql!r}: {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines()]


def _unprivileged(data: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's programs as an unprivileged owner of ``data`` when we are root."""
    if os.geteuid() != 0:
        return []
    account = _account()
    os.chown(data, account.pw_uid, account.pw_gid)
    ids = [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    # Only CAP_DAC_READ_SEARCH survives (bounding set included); no_setuid_fixup keeps it for access(), which
    # initdb and postgres call on their own programs (in the cache under root's home when unpacked).
    caps = ["--securebits=+no_setuid_fixup", "--bounding-set=-all,+dac_read_search"]
    caps += ["--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search"]
    return ["setpriv", *ids, *caps]


def _account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerFailed("postgres: running as root, and neither a `postgres` nor a `nobody` user exists to run as")


def _initdb(programs: builds.Programs, prefix: list[str], data: Path, password: str, log: Path) -> None:
    """``initdb`` with a superuser ``_USER`` whose password is read from a file the server owner can read."""
    pwfile = data.parent / "password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    command = [*prefix, str(programs.path("initdb")), "-D", str(data), "-U", _USER, f"--pwfile={pwfile}"]
    command += ["--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
    with open(log, "w") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **programs.env}, timeout=300
        )
    pwfile.unlink()
    if done.returncode != 0:
        raise ServerFailed(f"postgres: initdb failed ({done.returncode}); log {log}:\n{tail(log)}")
