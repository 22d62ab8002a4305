"""open_store: which backend a URL names, how options (often strings from config files) are checked, what
credential_options takes from a Secret, and how S3 and GCS give up on an endpoint that does not answer."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from pyrostore.errors import AccessDenied, InvalidStoreURL, StoreError, StoreUnreachable
from pyrostore.store import ObjectStore, credential_options, open_existing_store, open_store
from pyrostore.store.file import FileStore
from pyrostore.store.gcs import GCSStore
from pyrostore.store.s3 import S3Store

# Explicit keys keep boto3 from looking for credentials elsewhere (such as a cloud metadata service).
S3_KEYS = {"access_key_id": "id", "secret_access_key": "secret-value"}
# An endpoint makes the GCS client anonymous instead of looking for Google credentials.
GCS_LOCAL = {"endpoint_url": "http://127.0.0.1:1"}


def closed_port() -> int:
    """A loopback port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def options_for(url: str) -> dict[str, str]:
    """Options that let a store of ``url`` open without looking for credentials."""
    return {"s3": S3_KEYS, "gs": GCS_LOCAL}.get(url.split(":", 1)[0].lower(), {})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/archive", "/data/archive/k/1"),
        ("/data/archive/", "/data/archive/k/1"),
        ("file:///data/archive", "/data/archive/k/1"),
        ("file://localhost/data/my%20archive", "/data/my archive/k/1"),
        ("s3://bucket", "s3://bucket/k/1"),
        ("s3://bucket/", "s3://bucket/k/1"),
        ("s3://bucket/some/prefix/", "s3://bucket/some/prefix/k/1"),
        ("S3://bucket/p", "s3://bucket/p/k/1"),
        ("gs://bucket/p", "gs://bucket/p/k/1"),
    ],
)
def test_location_names_the_object_as_engines_do(url, expected):
    store = open_existing_store(url, **options_for(url))
    assert store.location("k/1") == expected
    store.close()


def test_location_refuses_invalid_keys(tmp_path):
    for url in (str(tmp_path), "s3://bucket/p", "gs://bucket/p"):
        store = open_store(url, **options_for(url))
        for bad in ("", "/abs", "a//b", "../up"):
            with pytest.raises(ValueError):
                store.location(bad)


def test_relative_and_home_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert open_existing_store("rel/dir").location("k") == str(tmp_path / "rel" / "dir" / "k")
    assert open_existing_store("~/x").location("k") == str(tmp_path / "home" / "x" / "k")
    assert open_existing_store("odd:name").location("k") == str(tmp_path / "odd:name" / "k")
    assert open_existing_store("pa@th").location("k") == str(tmp_path / "pa@th" / "k")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://host/dir", "unknown scheme 'ftp'"),
        ("azure://container/p", "unknown scheme"),
        ("file://host/dir", "absolute path"),
        ("file:relative/dir", "absolute path"),
        ("s3://", "no bucket"),
        ("gs:///prefix", "no bucket"),
        ("s3://bucket/a/../b", "'..'"),
        ("s3://bucket/a/./b", "'.'"),
        ("s3://bucket/p?region=eu", "query"),
        ("gs://bucket/p#x", "fragment"),
    ],
)
def test_bad_urls_are_refused(url, complaint):
    with pytest.raises(InvalidStoreURL) as caught:
        open_store(url)
    assert complaint in str(caught.value)
    assert repr(url) in str(caught.value) or complaint == "no bucket"


def test_unknown_scheme_error_lists_the_accepted_ones():
    with pytest.raises(InvalidStoreURL, match=r"file:///abs/dir, s3://bucket/prefix or gs://bucket/prefix"):
        open_store("http://example/x")


def test_a_file_store_url_opens_the_same_folder(tmp_path):
    folder = tmp_path / "odd name #1 ?x=%20"
    store = open_store(str(folder))
    store.put("k", b"v")
    assert " " not in store.url and "#" not in store.url
    assert open_store(store.url, create=False).get("k") == b"v"


def test_credentials_in_a_url_are_refused_without_echoing_them():
    with pytest.raises(InvalidStoreURL) as caught:
        open_store("s3://AKIDEXAMPLE:hunter2@bucket/p")
    assert "hunter2" not in str(caught.value) and "AKIDEXAMPLE" not in str(caught.value)
    assert "s3://bucket/p" in str(caught.value)
    with pytest.raises(InvalidStoreURL) as caught:
        open_store("gs://user:pw@bucket/a@b")
    assert ":pw" not in str(caught.value) and "'gs://bucket/a@b'" in str(caught.value)


def test_each_scheme_opens_its_backend(tmp_path):
    stores = [
        open_store(str(tmp_path / "a")),
        open_store(f"file://{tmp_path}/b"),
        open_store("s3://bucket/p", **S3_KEYS),
        open_store("gs://bucket/p", **GCS_LOCAL),
    ]
    assert [type(store) for store in stores] == [FileStore, FileStore, S3Store, GCSStore]
    assert [store.url for store in stores] == [
        f"file://{tmp_path}/a",
        f"file://{tmp_path}/b",
        "s3://bucket/p",
        "gs://bucket/p",
    ]
    for store in stores:
        assert isinstance(store, ObjectStore)
        store.close()


def test_urls_errors_and_retry_logs_never_carry_secrets(caplog):
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    for url, options in [("s3://bucket/p", S3_KEYS), ("gs://bucket/p", {})]:
        store = open_store(url, endpoint_url="http://user:pw@127.0.0.1:1", retry_deadline=0.5, **options)
        assert "secret-value" not in store.url
        with pytest.raises(StoreError) as caught:
            store.get("k")
        assert "secret-value" not in str(caught.value) and ":pw@" not in str(caught.value)
    assert caplog.records, "the closed port was not retried"
    assert "secret-value" not in caplog.text and ":pw@" not in caplog.text


# --- options ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [False, "false", "False", "no", "0", "off", " OFF "])
def test_false_create_option_does_not_make_the_folder(tmp_path, value):
    open_store(str(tmp_path / "x"), create=value)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", [True, "true", "yes", "1", "on"])
def test_true_create_option_makes_the_folder(tmp_path, value):
    open_store(str(tmp_path / "x"), create=value)
    assert (tmp_path / "x").is_dir()


def test_options_given_as_none_count_as_absent(tmp_path):
    open_store(str(tmp_path / "x"), create=None)
    assert (tmp_path / "x").is_dir()
    open_store("s3://bucket", endpoint_url=None, region=None, **S3_KEYS).close()


@pytest.mark.parametrize(
    ("url", "options", "complaint"),
    [
        (
            "/tmp/x",
            {"endpoint_url": "http://h"},
            "unknown option 'endpoint_url'; valid options: create, retry_deadline",
        ),
        (
            "s3://b",
            {"bucket": "x"},
            "unknown option 'bucket'; valid options: access_key_id, ca_bundle, credentials_dir, endpoint_url",
        ),
        ("s3://b", {"max_attempts": "3"}, "unknown option 'max_attempts'"),  # replaced by retry_deadline
        ("gs://b", {"region": "eu"}, "valid options: credentials_file, endpoint_url, project, retry_deadline"),
        ("gs://b", {"retry_timeout": "5"}, "unknown option 'retry_timeout'"),  # replaced by retry_deadline
        ("/tmp/x", {"create": "maybe"}, "option 'create' must be true or false, not 'maybe'"),
        ("/tmp/x", {"create": 1}, "option 'create' must be true or false"),
        ("s3://b", {"retry_deadline": "soon"}, "option 'retry_deadline' must be a number, not 'soon'"),
        ("s3://b", {"retry_deadline": True}, "option 'retry_deadline' must be a number"),
        ("s3://b", {"retry_deadline": "-1", **S3_KEYS}, "retry_deadline must be a number of seconds >= 0, not -1"),
        ("gs://b", {"retry_deadline": "nan", **GCS_LOCAL}, "retry_deadline must be a number of seconds >= 0"),
        ("/tmp/x", {"retry_deadline": -2}, "retry_deadline must be a number of seconds >= 0"),
        ("s3://b", {"region": 5}, "option 'region' must be a string, not int"),
    ],
)
def test_bad_options_are_refused(url, options, complaint):
    with pytest.raises(InvalidStoreURL) as caught:
        open_store(url, **options)
    assert complaint in str(caught.value)


def test_string_options_are_parsed():
    store = open_store("s3://b", retry_deadline="2.5", region="eu-west-1", **S3_KEYS)
    assert store._client.meta.region_name == "eu-west-1"
    store.close()
    open_store("gs://b", retry_deadline=" 2.5 ", **GCS_LOCAL).close()


@pytest.mark.parametrize("url", ["s3://b", "gs://b"])
def test_a_deadline_caps_the_timeouts_of_each_attempt(url):
    def timeouts(store) -> tuple[float, float]:
        if url.startswith("s3"):
            return store._client.meta.config.connect_timeout, store._client.meta.config.read_timeout
        return store._timeout

    assert timeouts(open_store(url, retry_deadline="3", **options_for(url))) == (3, 3)
    assert timeouts(open_store(url, retry_deadline="0", **options_for(url))) == (1, 1)  # enough to connect
    assert timeouts(open_store(url, retry_deadline="inf", **options_for(url))) == (10, 60)
    assert timeouts(open_store(url, **options_for(url))) == (10, 60)


def test_file_stores_accept_a_deadline_and_ignore_it(tmp_path):
    store = open_store(str(tmp_path / "s"), retry_deadline="15")
    store.put("k", b"v")
    assert store.get("k") == b"v"


def test_s3_keys_must_come_in_pairs():
    with pytest.raises(InvalidStoreURL, match="together"):
        open_store("s3://b", access_key_id="id")


def test_s3_region_defaults_to_us_east_1(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    store = open_store("s3://b", **S3_KEYS)
    assert store._client.meta.region_name == "us-east-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert open_store("s3://b", **S3_KEYS)._client.meta.region_name == "ap-south-1"


def test_unknown_aws_profile_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(InvalidStoreURL, match="profile 'ghost' not found"):
        open_store("s3://b", profile="ghost")


def test_missing_aws_credentials_are_access_denied(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata service
    store = open_store("s3://b", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(AccessDenied, match="no AWS credentials"):
        store.get("k")


def test_gcs_service_account_file_gives_credentials_and_project(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = {
        "type": "service_account",
        "project_id": "from-the-file",
        "private_key_id": "1",
        "private_key": key.decode(),
        "client_email": "archiver@from-the-file.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    store = open_store("gs://b", credentials_file=str(path), **GCS_LOCAL)
    assert store._client.project == "from-the-file"
    assert store._client._credentials.service_account_email == info["client_email"]
    assert open_store("gs://b", credentials_file=str(path), project="mine")._client.project == "mine"


def test_unsupported_gcs_credentials_type_is_a_store_error(tmp_path):
    path = tmp_path / "ext.json"
    path.write_text(json.dumps({"type": "external_account"}))
    with pytest.raises(StoreError, match="type 'external_account' is not supported"):
        open_store("gs://b", credentials_file=str(path))


def test_unreadable_gcs_credentials_file_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="credentials_file"):
        open_store("gs://b", credentials_file=str(tmp_path / "missing.json"), **GCS_LOCAL)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StoreError, match="credentials_file"):
        open_store("gs://b", credentials_file=tmp_path / "bad.json", **GCS_LOCAL)


# --- read-only opening -------------------------------------------------------------------------------------


def test_read_only_opening_creates_nothing(tmp_path):
    store = open_existing_store(str(tmp_path / "absent"))
    assert not (tmp_path / "absent").exists()
    assert store.url == f"file://{tmp_path}/absent"
    assert open_existing_store(str(tmp_path / "absent"), create="false").url == store.url
    with pytest.raises(InvalidStoreURL, match="option 'create' cannot be True when opening an existing store"):
        open_existing_store(str(tmp_path / "absent"), create="yes")
    assert not (tmp_path / "absent").exists()


def test_read_only_stores_of_every_backend_open(tmp_path):
    for url in (str(tmp_path), "s3://bucket/p", "gs://bucket/p"):
        open_existing_store(url, **options_for(url)).close()


# --- credentials from a Secret -----------------------------------------------------------------------------

SECRET = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key", "AWS_SESSION_TOKEN": "token", "OTHER": "x"}


def test_s3_takes_the_aws_keys_of_a_secret():
    assert credential_options("s3://b/p", SECRET) == {
        "access_key_id": "id",
        "secret_access_key": "key",
        "session_token": "token",
    }
    assert credential_options("S3://b", {"AWS_ACCESS_KEY_ID": "id"}) == {"access_key_id": "id"}
    assert credential_options("s3://b", {}) == {}


def test_gcs_and_folders_take_nothing_from_a_secret(tmp_path):
    assert credential_options("gs://b/p", SECRET) == {}
    assert credential_options(str(tmp_path), SECRET) == {}
    assert credential_options(f"file://{tmp_path}", SECRET) == {}


def test_credential_options_open_the_store():
    store = open_store("s3://b", **credential_options("s3://b", SECRET))
    assert store._client._request_signer._credentials.access_key == "id"


def test_credential_options_refuse_a_bad_url_without_quoting_the_secret():
    with pytest.raises(InvalidStoreURL) as caught:
        credential_options("ftp://b", SECRET)
    assert "key" not in str(caught.value).replace("unknown", "")
    assert "token" not in str(caught.value)


# --- retries and unreachable servers ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["s3://bucket/p", "gs://bucket/p"])
def test_a_closed_port_is_unreachable_after_the_deadline_and_each_retry_is_logged(url, caplog):
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = open_store(url, retry_deadline="2", **options_for(url) | {"endpoint_url": endpoint})
    started = time.monotonic()
    with pytest.raises(StoreUnreachable) as caught:
        store.get("k")
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 5
    message = str(caught.value)
    assert message.startswith(f"get 'k' in {url}: cannot connect to {endpoint} within the retry deadline (2 s): ")
    assert "\n" not in message
    retries = [r for r in caplog.records if r.name == "pyrostore.store"]
    assert len(retries) >= 2 and all(r.levelno == logging.WARNING for r in retries)
    assert all(r.getMessage().startswith(f"get 'k' in {url} (endpoint {endpoint}): ") for r in retries)
    assert [f"retry {n} in " in r.getMessage() for n, r in enumerate(retries, 1)] == [True] * len(retries)


@pytest.mark.parametrize("url", ["s3://bucket/p", "gs://bucket/p"])
def test_a_zero_deadline_makes_one_attempt(url, caplog):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = open_store(url, retry_deadline=0, **options_for(url) | {"endpoint_url": endpoint})
    started = time.monotonic()
    with pytest.raises(StoreUnreachable, match="within the retry deadline \\(0 s\\)"):
        list(store.list(""))
    assert time.monotonic() - started < 2
    assert not [r for r in caplog.records if r.name == "pyrostore.store"]


class FlakyServer:
    """A local HTTP server that answers each request for object ``k`` of a store at ``bucket/p`` with the next
    of ``answers`` (status, body), then with the last one: enough to show which answers a store retries.
    Other requests (the GCS library fetches bucket metadata in the background) get 404."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers, self.requests = answers, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "p/k" not in unquote(self.path):
                    status, body = 404, b""
                else:
                    status, body = server.answers[min(server.requests, len(server.answers) - 1)]
                    server.requests += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SLOW_DOWN = (503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>")
DENIED = (403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")


@pytest.mark.parametrize("url", ["s3://bucket/p", "gs://bucket/p"])
def test_server_errors_are_retried_until_the_answer_comes(url, caplog):
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    server = FlakyServer([SLOW_DOWN, SLOW_DOWN, (200, b"hello")])
    try:
        store = open_store(url, **options_for(url) | {"endpoint_url": server.endpoint})  # no deadline
        assert store.get("k") == b"hello"
    finally:
        server.close()
    assert server.requests == 3
    assert [r.getMessage().split(": ", 1)[0] for r in caplog.records] == [
        f"get 'k' in {url} (endpoint {server.endpoint})"
    ] * 2


@pytest.mark.parametrize("url", ["s3://bucket/p", "gs://bucket/p"])
def test_a_refusal_is_not_retried(url, caplog):
    server = FlakyServer([DENIED])
    try:
        store = open_store(url, **options_for(url) | {"endpoint_url": server.endpoint})  # no deadline
        with pytest.raises(AccessDenied):
            store.get("k")
    finally:
        server.close()
    assert server.requests == 1
    assert not [r for r in caplog.records if r.name == "pyrostore.store"]


@pytest.mark.parametrize("url", ["s3://bucket/p", "gs://bucket/p"])
def test_server_errors_past_the_deadline_are_store_errors(url):
    server = FlakyServer([SLOW_DOWN])
    try:
        store = open_store(url, retry_deadline=1, **options_for(url) | {"endpoint_url": server.endpoint})
        with pytest.raises(StoreError) as caught:
            store.get("k")
    finally:
        server.close()
    assert type(caught.value) is StoreError and "get 'k' in " + url in str(caught.value)
    assert server.requests >= 2


def test_file_store_path_object_is_accepted(tmp_path: Path):
    assert FileStore(tmp_path / "p").url == f"file://{tmp_path}/p"


def _secret_folder(folder: Path, data: dict[str, str]) -> str:
    """``data`` as a Kubernetes Secret volume holds it: one file per key."""
    folder.mkdir()
    for key, value in data.items():
        (folder / key).write_text(value)
    return str(folder)


def test_s3_takes_its_credentials_from_a_mounted_secret_folder_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-key")
    folder = _secret_folder(tmp_path / "mirror", {**SECRET, "AWS_ACCESS_KEY_ID": "dir-id\n"})
    credentials = open_store("s3://b", credentials_dir=folder)._client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key, credentials.token) == ("dir-id", "key", "token")
    no_token = _secret_folder(tmp_path / "plain", {"AWS_ACCESS_KEY_ID": "i", "AWS_SECRET_ACCESS_KEY": "k"})
    assert open_store("s3://b", credentials_dir=no_token)._client._request_signer._credentials.token is None


def test_a_credentials_folder_without_both_keys_is_refused_without_quoting_them(tmp_path):
    folder = _secret_folder(tmp_path / "half", {"AWS_ACCESS_KEY_ID": "half-secret-id"})
    with pytest.raises(InvalidStoreURL, match="needs files AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") as caught:
        open_store("s3://b", credentials_dir=folder)
    assert "half-secret-id" not in str(caught.value)
    with pytest.raises(InvalidStoreURL, match="credentials_dir or access_key_id, not both"):
        open_store("s3://b", credentials_dir=folder, access_key_id="i", secret_access_key="k")
