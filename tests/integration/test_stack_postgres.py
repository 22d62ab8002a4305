"""The stack's PostgreSQL really works: Debian's server, run unprivileged, reached by password over TCP only, and
started again in another folder on another port, from the installed package or one unpacked from Debian."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from e2e.stack import ServerFailed, builds, postgres
from e2e.stack.postgres import PostgresServer


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def _round_trip(server: PostgresServer, table: str) -> list[list[str]]:
    return server.psql(
        f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL);"
        f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two'), (3, 'three');"
        f"UPDATE {table} SET name = upper(name) WHERE id = 2;"
        f"SELECT id, name FROM {table} ORDER BY id DESC"
    )


def _stops_cleanly(server: PostgresServer) -> None:
    server.stop()
    assert not server.process.alive()
    assert "database system is shut down" in server.process.log.read_text()


def test_postgres_runs_sql_in_its_database(postgres_server):
    assert _round_trip(postgres_server, "catalog_probe") == [["3", "three"], ["2", "TWO"], ["1", "one"]]
    assert postgres_server.psql("SELECT current_database(), current_user") == [["pyrostore", "pyrostore"]]
    assert postgres_server.psql("SHOW listen_addresses") == [["127.0.0.1"]]
    if os.geteuid() == 0:  # PostgreSQL refuses root; the stack runs it as a user of its own
        assert _uid(postgres_server.process.pid) != 0


def test_postgres_urls_name_the_server(postgres_server):
    for url, scheme in (
        (postgres_server.url, "postgresql"),
        (postgres_server.sqlalchemy_url(), "postgresql+psycopg2"),
        (postgres_server.sqlalchemy_url("pg8000"), "postgresql+pg8000"),
    ):
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == (scheme, "127.0.0.1", postgres_server.port)
        assert (parts.username, parts.password) == (postgres_server.user, postgres_server.password)
        assert parts.path == f"/{postgres_server.database}"


def test_postgres_refuses_a_wrong_password(postgres_server):
    wrong = postgres_server.url.replace(f":{postgres_server.password}@", ":not-the-password@")
    with pytest.raises(ServerFailed, match="password authentication failed"):
        postgres.run_psql(postgres_server.programs, wrong, "SELECT 1")


def test_a_second_postgres_starts_in_another_folder_on_another_port(postgres_server, tmp_path):
    second = postgres.start(tmp_path / "postgres")
    try:
        assert second.port != postgres_server.port
        assert second.password != postgres_server.password
        assert _round_trip(second, "catalog_probe") == [["3", "three"], ["2", "TWO"], ["1", "one"]]
    finally:
        _stops_cleanly(second)
    assert postgres_server.psql("SELECT 1") == [["1"]]


def test_postgres_unpacked_from_debian_s_archive_runs(tmp_path):
    programs = builds.postgres_unpacked()
    assert all(str(builds.cache_root()) in str(folder) for folder in programs.folders)
    server = postgres.start(tmp_path / "postgres", programs)
    try:
        version = server.psql("SHOW server_version")[0][0]
        assert version.startswith(f"{builds.POSTGRES_MAJOR}.")
        assert _round_trip(server, "unpacked_probe")[0] == ["3", "three"]
    finally:
        _stops_cleanly(server)
