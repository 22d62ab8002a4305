"""open_store: which backend a URL names, how options (often strings from config files) are checked."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from pyrostore.errors import AccessDenied, InvalidStoreURL, StoreError
from pyrostore.store import ObjectStore, open_store
from pyrostore.store._url import Location, parse_url, redact
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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/archive", Location("file", "/data/archive")),
        ("/data/archive/", Location("file", "/data/archive")),
        ("file:///data/archive", Location("file", "/data/archive")),
        ("file://localhost/data/my%20archive", Location("file", "/data/my archive")),
        ("s3://bucket", Location("s3", "bucket", "")),
        ("s3://bucket/", Location("s3", "bucket", "")),
        ("s3://bucket/some/prefix/", Location("s3", "bucket", "some/prefix")),
        ("S3://bucket/p", Location("s3", "bucket", "p")),
        ("gs://bucket/p", Location("gs", "bucket", "p")),
    ],
)
def test_parse_url(url, expected):
    assert parse_url(url) == expected


def test_relative_and_home_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_url("rel/dir") == Location("file", str(tmp_path / "rel" / "dir"))
    assert parse_url("~/x") == Location("file", str(tmp_path / "home" / "x"))
    assert parse_url("odd:name") == Location("file", str(tmp_path / "odd:name"))


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
    assert redact("gs://user:pw@bucket/a@b") == "gs://bucket/a@b"
    assert redact("/plain/pa@th") == "/plain/pa@th"


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


def test_urls_and_errors_never_carry_secrets():
    store = open_store("s3://bucket/p", endpoint_url="http://user:pw@127.0.0.1:1", max_attempts=1, **S3_KEYS)
    assert "secret-value" not in store.url
    with pytest.raises(StoreError) as caught:
        store.get("k")
    assert "secret-value" not in str(caught.value) and ":pw@" not in str(caught.value)


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
        ("/tmp/x", {"endpoint_url": "http://h"}, "unknown option 'endpoint_url'; valid options: create"),
        ("s3://b", {"bucket": "x"}, "unknown option 'bucket'; valid options: access_key_id, endpoint_url"),
        ("gs://b", {"region": "eu"}, "valid options: credentials_file, endpoint_url, project, retry_timeout"),
        ("/tmp/x", {"create": "maybe"}, "option 'create' must be true or false, not 'maybe'"),
        ("/tmp/x", {"create": 1}, "option 'create' must be true or false"),
        ("s3://b", {"max_attempts": "many"}, "option 'max_attempts' must be a number, not 'many'"),
        ("s3://b", {"max_attempts": True}, "option 'max_attempts' must be a number"),
        ("s3://b", {"max_attempts": "0"}, "max_attempts must be at least 1"),
        ("s3://b", {"region": 5}, "option 'region' must be a string, not int"),
        ("gs://b", {"retry_timeout": "-1", **GCS_LOCAL}, "retry_timeout must be positive"),
    ],
)
def test_bad_options_are_refused(url, options, complaint):
    with pytest.raises(InvalidStoreURL) as caught:
        open_store(url, **options)
    assert complaint in str(caught.value)


def test_string_options_are_parsed():
    store = open_store("s3://b", max_attempts="3", region="eu-west-1", **S3_KEYS)
    assert store._client.meta.region_name == "eu-west-1"
    store.close()
    open_store("gs://b", retry_timeout="2.5", **GCS_LOCAL).close()


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


# --- unreachable servers ------------------------------------------------------------------------------------


def test_unreachable_s3_endpoint_is_a_store_error_naming_it():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = open_store("s3://bucket/p", endpoint_url=endpoint, max_attempts="2", **S3_KEYS)
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        store.get("k")
    assert type(caught.value) is StoreError
    assert "get 'k' in s3://bucket/p: cannot connect to " + endpoint in str(caught.value)
    assert time.monotonic() - started < 30


def test_unreachable_gcs_endpoint_is_a_store_error_naming_it():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = open_store("gs://bucket/p", endpoint_url=endpoint, retry_timeout="1")
    with pytest.raises(StoreError) as caught:
        store.put("k", b"x")
    assert type(caught.value) is StoreError
    assert "put 'k' in gs://bucket/p: cannot connect to " + endpoint in str(caught.value)


def test_file_store_path_object_is_accepted(tmp_path: Path):
    assert FileStore(tmp_path / "p").url == f"file://{tmp_path}/p"
