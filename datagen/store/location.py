"""Where a store lives: a local path, a ``file://`` URL or an object-store URL
(``s3://bucket/prefix``), and how zarr-python and tensorstore address it.

    path = location.parse("s3://datagen/racing.zarr")     # ObjectPath
    path = location.parse("storage/racing.zarr")          # pathlib.Path
    zarr.open_group(location.zarr_store(path, read_only=True), mode="r")
    tensorstore.open({"driver": "zarr3", "kvstore": location.ts_kvstore(path / "train/depth_hr")})

Local stores stay ``pathlib.Path`` objects. An ``ObjectPath`` offers the few
``Path`` operations the store code uses (``/``, ``name``, ``parent``,
``is_file``, ``exists``), so the writer and reader treat both alike.

S3 credentials, region and endpoint come from the standard AWS sources, resolved
by botocore exactly as the AWS CLI does: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
(or ``AWS_PROFILE`` and ~/.aws/credentials, or an instance role),
``AWS_REGION``/``AWS_DEFAULT_REGION`` or the profile's region, and
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``, or the profile's ``endpoint_url``)
for S3-compatible servers such as MinIO or Ceph. Only ``s3://`` is supported:
other schemes (``gs://``, ``az://``) are refused in one line.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from datagen.errors import StoreError

SCHEMES = ("s3",)
"""object-store URL schemes a store may live under."""

CONNECT_TIMEOUT_S = 5
"""seconds to wait for an object-store endpoint to accept a connection."""

CONNECT_ATTEMPTS = 2
"""tries of one request before an unreachable endpoint is reported."""


@dataclass(frozen=True)
class ObjectPath:
    """A key prefix in an object-store bucket: ``s3://bucket/key``."""

    scheme: str
    bucket: str
    key: str
    """the prefix inside the bucket, without leading or trailing '/' ("" = the bucket's root)."""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}".rstrip("/")

    def __truediv__(self, part: str | os.PathLike) -> ObjectPath:
        tail = str(part).strip("/")
        return ObjectPath(self.scheme, self.bucket, f"{self.key}/{tail}".strip("/"))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.scheme, self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    def resolve(self) -> ObjectPath:
        return self

    def is_file(self) -> bool:
        """True if an object is at this key (s3fs's own ``isfile`` hides errors as False)."""
        with object_errors(self):
            try:
                return filesystem().info(self.fs_path)["type"] == "file"
            except FileNotFoundError:
                return False

    @property
    def fs_path(self) -> str:
        """The path s3fs takes: bucket/key."""
        return f"{self.bucket}/{self.key}".rstrip("/")


StorePath = Path | ObjectPath
"""A store's location, as ``parse`` gives it."""


def parse(text: str | os.PathLike | ObjectPath) -> StorePath:
    """A store argument (path, ``file://`` URL or ``s3://bucket/prefix``) as a Path or
    an ObjectPath; StoreError for another scheme or an s3 URL without a bucket."""
    if isinstance(text, Path | ObjectPath):
        return text
    text = os.fspath(text)
    if "://" not in text:
        return Path(text)
    url = urllib.parse.urlparse(text)
    if url.scheme == "file" and url.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(url.path))
    if url.scheme not in SCHEMES:
        raise StoreError(f"{text}: {url.scheme}:// is not supported; a store is a local or shared "
                         "file-system path, a file:// URL or s3://BUCKET/PREFIX (S3 or an "
                         "S3-compatible server through AWS_ENDPOINT_URL); see docs/cluster.md")
    if not url.netloc:
        raise StoreError(f"{text}: no bucket; write s3://BUCKET/PREFIX, e.g. s3://datagen/racing.zarr")
    return ObjectPath(url.scheme, url.netloc, urllib.parse.unquote(url.path).strip("/"))


def is_remote(path: StorePath) -> bool:
    return isinstance(path, ObjectPath)


# -- AWS settings, resolved the AWS way ------------------------------------------------------------


@dataclass(frozen=True)
class S3Settings:
    """What botocore resolved from the environment, config and profile."""

    endpoint_url: str | None
    """a custom endpoint (S3-compatible server), or None for AWS itself."""
    region: str


@functools.cache
def s3_settings() -> S3Settings:
    """The endpoint and region botocore resolves here (one lookup per process)."""
    import botocore.session

    session = botocore.session.Session()
    region = session.get_config_variable("region") or "us-east-1"
    client = session.create_client("s3", region_name=region)
    endpoint = client.meta.endpoint_url
    custom = not urllib.parse.urlparse(endpoint).hostname.endswith("amazonaws.com")
    return S3Settings(endpoint if custom else None, region)


def storage_options() -> dict:
    """fsspec/s3fs options: the resolved endpoint, short connect time-outs and few
    retries (an unreachable endpoint is reported in seconds, not minutes)."""
    settings = s3_settings()
    config = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 60,
              "retries": {"max_attempts": CONNECT_ATTEMPTS, "mode": "standard"}}
    client = {"region_name": settings.region}
    if settings.endpoint_url:
        client["endpoint_url"] = settings.endpoint_url
    return {"client_kwargs": client, "config_kwargs": config}


def filesystem():
    """This process's s3fs filesystem (fsspec caches the instance per options)."""
    import fsspec

    return fsspec.filesystem("s3", **storage_options())


def zarr_store(path: StorePath, read_only: bool = False):
    """What zarr.open_group / open_array take for ``path``: the Path itself, or an
    FsspecStore on the object-store prefix."""
    if not is_remote(path):
        return path
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(str(path), storage_options=storage_options(), read_only=read_only)


def ts_kvstore(path: StorePath) -> dict:
    """The tensorstore kvstore spec of ``path`` (its ``s3`` driver for object stores;
    credentials from the environment or profile, as tensorstore's default chain)."""
    if not is_remote(path):
        return {"driver": "file", "path": str(path)}
    settings = s3_settings()
    spec = {"driver": "s3", "bucket": path.bucket, "path": path.key + "/", "aws_region": settings.region,
            "aws_credentials": _ts_credentials()}
    if settings.endpoint_url:
        spec["endpoint"] = settings.endpoint_url
    return spec


_checked_buckets: set[str] = set()


def check_bucket(path: StorePath) -> None:
    """For an object-store path: one request to its bucket, so that a missing bucket,
    refused credentials or an unreachable endpoint is one clear StoreError before
    any other work (checked once per bucket and process)."""
    if not is_remote(path) or path.bucket in _checked_buckets:
        return
    with object_errors(path):
        try:
            filesystem().call_s3("head_bucket", Bucket=path.bucket)
        except FileNotFoundError as exc:  # s3fs maps 404 to this
            raise FileNotFoundError(f"NoSuchBucket: {exc}") from exc
    _checked_buckets.add(path.bucket)


def _ts_credentials() -> dict:
    """tensorstore's credential source: the environment's keys when set (its default
    chain would first log errors about a missing ~/.aws/credentials), else the
    profile, else its default chain (instance roles included)."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return {"type": "environment"}
    if os.environ.get("AWS_PROFILE"):
        return {"type": "profile", "profile": os.environ["AWS_PROFILE"]}
    return {"type": "default"}


TS_CONTEXT = {"s3_request_retries": {"max_retries": 5, "initial_delay": "0.2s", "max_delay": "2s"}}
"""tensorstore context options: a few quick retries (its default, 32 with back-off up
to a minute, would hold an unreachable endpoint for many minutes)."""


def file_sizes(path: StorePath) -> int:
    """Bytes of every file (object) under ``path``."""
    if not is_remote(path):
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    with object_errors(path):
        return int(filesystem().du(path.fs_path, total=True))


def remove_tree(path: StorePath) -> None:
    """Delete everything under ``path`` (a folder, or every object under the prefix)."""
    import shutil

    if not is_remote(path):
        shutil.rmtree(path)
        return
    with object_errors(path):
        filesystem().rm(path.fs_path, recursive=True)


def is_empty_dir(path: StorePath) -> bool:
    """True for an empty local folder (an object prefix is never a thing of its own)."""
    return not is_remote(path) and path.is_dir() and not any(path.iterdir())


# -- errors -----------------------------------------------------------------------------------------


def explain(path: StorePath, exc: BaseException) -> str | None:
    """A one-line reason for an object-store failure, with what to do; None if
    ``exc`` is not one this module recognises."""
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    bucket = f"s3://{path.bucket}" if is_remote(path) else "the bucket"
    if "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket" in low:
        return (f"no such bucket {bucket}; create it (`aws s3 mb {bucket}`) or fix the URL, and check "
                "AWS_ENDPOINT_URL if you use an S3-compatible server")
    # connection failures first: their text holds a URL whose port may contain "403"
    if any(word in low for word in ("could not connect", "connect timeout", "endpointconnectionerror",
                                    "connection refused", "cannot connect", "name or service not known",
                                    "connecttimeout", "failed to connect", "timed out", "unavailable")):
        endpoint = s3_settings().endpoint_url or "AWS S3"
        return (f"cannot reach the object store at {endpoint}; check AWS_ENDPOINT_URL (or the profile's "
                "endpoint_url) and the network, then run again")
    if any(word in low for word in ("accessdenied", "access denied", "forbidden", "invalidaccesskeyid",
                                    "signaturedoesnotmatch", "permissionerror",
                                    "unable to locate credentials", "nocredentials")) \
            or re.search(r"\b403\b", low):
        return (f"access denied to {bucket}; check the credentials (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and that they may read and write the bucket")
    return None


class object_errors:  # noqa: N801 (used like contextlib's lower-case managers)
    """Turn an object-store failure under ``path`` into a one-line StoreError."""

    def __init__(self, path: StorePath):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, StoreError) or not is_remote(self.path):
            return False
        reason = explain(self.path, exc)
        if reason is None:
            return False
        raise StoreError(f"{self.path}: {reason}") from exc


def forget_settings() -> None:
    """Resolve the AWS settings again on next use (after the environment changed)."""
    from s3fs import S3FileSystem

    s3_settings.cache_clear()
    _checked_buckets.clear()
    S3FileSystem.clear_instance_cache()
