"""Storage: every path echoforge reads or writes, local or remote, through fsspec.

A location is a local path or a URL: ``s3://bucket/key`` (s3fs), ``gs://bucket/key``
(gcsfs), ``hf://datasets/org/name/...`` (huggingface_hub, read-only) or ``memory://`` (tests).
Credentials, endpoints and regions come from the usual environment variables (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``)
and from ``storage`` options in the config, keyed by protocol
(``{"s3": {"endpoint_url": ..., "key": ..., "secret": ...}}``), passed to the filesystem.

Writes of whole objects are atomic: on local disk a temporary file in the same folder is
fsynced, renamed into place and the folder fsynced; on object stores a PUT (or a completed
multipart upload) is atomic by itself. ``create`` writes only when nothing is there (an
``O_EXCL`` link on local disk, a conditional put ``If-None-Match: *`` on S3).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any, Callable, Iterator, Mapping, TypeVar

from echoforge.errors import EchoforgeError, MissingDependency, StoreUnavailable, explain, is_transient
from echoforge.hashing import sha256_of

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 120.0  # how long a storage call is retried on transient errors before the build stops

# protocol -> (module that implements it, extra that installs it)
PROTOCOLS = {
    "file": (None, None),
    "s3": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "hf": ("huggingface_hub", None),
    "memory": (None, None),
}
OPTIONS_KEY = {"gcs": "gs"}  # the config section that holds a protocol's options
READ_ONLY = {"hf"}
# Refused with one line until they have a test against a store that runs here.
UNTESTED = {"gs": "gs:// (and gcs://) locations are not supported yet: copy the data to s3:// or a local path"}
# Option names that hold credentials (at any depth of a protocol's options).
SECRET_KEYS = frozenset({"key", "secret", "token", "password", "session_token", "aws_access_key_id",
                         "aws_secret_access_key", "aws_session_token", "access_key", "secret_key",
                         "client_secret", "private_key", "account_key", "sas_token", "credentials"})


class StorageError(EchoforgeError):
    """A location cannot be used (unknown scheme, read-only, unreachable)."""


def protocol_of(location: str) -> str:
    """``s3`` for ``s3://b/k``, ``file`` for a local path."""
    text = str(location)
    if "://" in text:
        return text.split("://", 1)[0].lower()
    return "file"


def is_remote(location: str) -> bool:
    return protocol_of(location) != "file"


def join(location: str, *parts: str) -> str:
    """``location`` with ``parts`` appended by ``/`` (works for paths and URLs)."""
    out = str(location).rstrip("/")
    for p in parts:
        if p:
            out = f"{out}/{str(p).strip('/')}"
    return out


def filesystem(location: str, options: Mapping[str, Mapping[str, Any]] | None = None):
    """``(fsspec filesystem, path inside it)`` for a location; one clear error otherwise."""
    import fsspec

    protocol = protocol_of(location)
    if protocol not in PROTOCOLS:
        raise StorageError(
            f"unsupported location '{location}': use a local path or an s3://, gs://, hf:// or memory:// URL"
        )
    if OPTIONS_KEY.get(protocol, protocol) in UNTESTED:
        raise StorageError(f"{location}: {UNTESTED[OPTIONS_KEY.get(protocol, protocol)]}")
    module, extra = PROTOCOLS[protocol]
    if module is not None:
        try:
            __import__(module)
        except ImportError:
            raise MissingDependency(f"{protocol}:// locations", extra or "s3", module) from None
    kwargs = dict((options or {}).get(OPTIONS_KEY.get(protocol, protocol), {}))
    if protocol == "file":
        kwargs.setdefault("auto_mkdir", True)
        path = os.path.abspath(os.path.expanduser(str(location).removeprefix("file://")))
        return fsspec.filesystem("file", **kwargs), path
    fs = fsspec.filesystem(protocol, **kwargs)
    return fs, fs._strip_protocol(str(location))


def retrying(call: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """``call()``, repeated with bounded exponential backoff (0.5 s doubling to 15 s, for
    ``budget_s`` seconds in all) while it fails with a transient error (connection, time-out,
    5xx, throttling); a permanent error is raised at once. When the budget is spent the
    error becomes one :class:`StoreUnavailable` line; a rerun resumes."""
    budget = RETRY_S if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                reason = explain(exc) or f"{type(exc).__name__}: {exc}"
                raise StoreUnavailable(f"{what}: still failing after {budget:.0f} s of retries: {reason}") from None
            log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, str(exc)[:120],
                        min(delay, left))
            time.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)


class Secret:
    """A credential: its value is never printed and never pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self):
        return (Secret, (None,))  # a pickle carries no credential


def _split_secrets(value: Any, key: str = "") -> Any:
    """``value`` with credentials (by option name) wrapped in :class:`Secret`."""
    if isinstance(value, Mapping):
        return {k: _split_secrets(v, k) for k, v in value.items()}
    if key.lower() in SECRET_KEYS and value is not None and not isinstance(value, Secret):
        return Secret(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    return value


def _reveal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _reveal(v) for k, v in value.items() if not (isinstance(v, Secret) and v.reveal() is None)}
    return value.reveal() if isinstance(value, Secret) else value


def secrets_from_file(path: str | os.PathLike) -> dict[str, Any]:
    """The ``storage`` section of a YAML config file (where workers find credentials)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return dict(data.get("storage") or {})


class StorageOptions(Mapping):
    """fsspec options per protocol (``{"s3": {"endpoint_url": ..., "key": ..., "secret": ...}}``).

    Credentials are held as :class:`Secret`: the ``repr`` shows stars, and a pickle (the job
    every worker receives) carries none of them: where it is unpickled they are read again
    from ``source``, the config file they came from, or left to the environment
    (``AWS_ACCESS_KEY_ID``...), which the filesystem reads itself.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, source: str | None = None):
        self._options = {k: _split_secrets(v) for k, v in dict(options or {}).items()}
        self.source = source

    def __getitem__(self, protocol: str) -> dict[str, Any]:
        return _reveal(self._options[protocol])

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __repr__(self) -> str:
        return f"StorageOptions({self._options!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self._options, "source": self.source}  # Secret values pickle as None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.source = state["source"]
        options = state["options"]
        if self.source and os.path.exists(self.source):
            fresh = _split_secrets(secrets_from_file(self.source))
            options = {k: _merge(v, fresh.get(k, {})) for k, v in options.items()}
        self._options = options


def _merge(public: Any, fresh: Any) -> Any:
    """``public`` options with the credentials of ``fresh`` put back."""
    if isinstance(public, Mapping):
        return {k: _merge(v, fresh.get(k) if isinstance(fresh, Mapping) else None) for k, v in public.items()}
    if isinstance(public, Secret) and isinstance(fresh, Secret):
        return fresh
    return public


def safe_name(text: str, suffix: str = "", limit: int = 150) -> str:
    """``text`` as one file name that stays inside its folder on every filesystem: runs of
    characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, no leading
    dot (no ``..``, no hidden file), and long names are cut and given a short hash so that two
    ids never share a name."""
    import hashlib
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".") or "_"
    if len(name) > limit or name != text:
        name = f"{name[:limit]}-{hashlib.sha256(str(text).encode()).hexdigest()[:8]}"
    return name + suffix


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class DataFolder:
    """A folder on any filesystem, addressed by paths relative to it.

    Picklable (the filesystem is rebuilt from ``url`` and ``options`` where it is unpickled),
    so engines ship it to workers, which then read and write their own objects.
    """

    url: str
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    retry_s: float | None = field(default=None, compare=False)  # None: RETRY_S

    def __post_init__(self) -> None:
        if not is_remote(self.url):
            object.__setattr__(self, "url", os.path.abspath(os.path.expanduser(str(self.url).removeprefix("file://"))))

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options, "retry_s": self.retry_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "url", state["url"])
        object.__setattr__(self, "options", state["options"])
        object.__setattr__(self, "retry_s", state.get("retry_s"))

    @cached_property
    def _fs_path(self):
        return filesystem(self.url, self.options)

    @property
    def fs(self):
        return self._fs_path[0]

    @property
    def root(self) -> str:
        return self._fs_path[1]

    @property
    def is_local(self) -> bool:
        return not is_remote(self.url)

    @property
    def protocol(self) -> str:
        return protocol_of(self.url)

    def path(self, rel: str = "") -> str:
        """Path of ``rel`` inside the filesystem."""
        return join(self.root, rel) if rel else self.root

    def url_of(self, rel: str = "") -> str:
        """Full location (path or URL) of ``rel``."""
        return join(self.url, rel) if rel else self.url

    def check_writable(self) -> None:
        """One line now, rather than a traceback later, when the folder cannot be written:
        a read-only protocol, missing or refused credentials, an endpoint that does not
        answer, a bucket that does not exist."""
        if self.protocol in READ_ONLY:
            raise StorageError(f"{self.url}: {self.protocol}:// is read-only here; build locally or to s3://, "
                               "then publish with `echoforge push`")
        if self.is_local:
            return
        bucket = self.root.split("/", 1)[0]
        try:
            self._retry(lambda: self.fs.ls(bucket), "opening", "")
        except FileNotFoundError:
            raise StorageError(f"{self.url}: the bucket '{bucket}' does not exist: create it or fix the URL") from None
        except EchoforgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the fix
            raise StorageError(f"{self.url}: {explain(exc) or f'{type(exc).__name__}: {exc}'}") from None

    # --- reading ---

    def refresh(self) -> None:
        """Forget this process's cached listings, so that objects other processes wrote since
        (workers committing units) are seen."""
        self.fs.invalidate_cache()  # (with a path, fsspec forgets that folder and its parents, not what is inside)

    def _retry(self, call: Callable[[], T], what: str, rel: str) -> T:
        return retrying(call, f"{what} {self.url_of(rel)}", self.retry_s)

    def exists(self, rel: str = "") -> bool:
        return self._retry(lambda: self.fs.exists(self.path(rel)), "checking", rel)

    def read_bytes(self, rel: str) -> bytes:
        return self._retry(lambda: self.fs.cat_file(self.path(rel)), "reading", rel)

    def modified(self, rel: str) -> float:
        """The store's modification time of ``rel`` (seconds since the epoch, by the store's clock)."""
        info = self._retry(lambda: self.fs.info(self.path(rel)), "reading", rel)
        value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, str):
            from datetime import datetime

            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return float(value)

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def open(self, rel: str, mode: str = "rb", **kwargs: Any) -> IO:
        return self.fs.open(self.path(rel), mode, **kwargs)

    def sha256(self, rel: str) -> str:
        with self.open(rel, "rb") as f:
            return sha256_of(f)

    def list(self, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix`` (recursively): relative path -> size in bytes."""
        base = self.path(prefix)
        try:
            found = self._retry(lambda: self.fs.find(base, detail=True), "listing", prefix)
        except FileNotFoundError:
            return {}
        root = self.root.rstrip("/") + "/"
        out = {}
        for name, info in found.items():
            if info.get("type") == "directory":
                continue
            name = name if not self.is_local else os.path.abspath(name)
            if name.startswith(root):
                out[name[len(root):]] = int(info.get("size") or 0)
        return dict(sorted(out.items()))

    def iter_json(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """(relative path, parsed JSON) of every ``*.json`` object under ``prefix``."""
        for rel in self.list(prefix):
            if rel.endswith(".json"):
                try:
                    yield rel, self.read_json(rel)
                except FileNotFoundError:
                    continue

    # --- writing ---

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole object atomically (readers see the old object or the new one)."""
        target = self.path(rel)
        if self.is_local:
            self._local_replace(target, lambda f: f.write(data))
        else:
            self._retry(lambda: self.fs.pipe_file(target, data), "writing", rel)

    @contextlib.contextmanager
    def open_atomic(self, rel: str) -> Iterator[IO[bytes]]:
        """A file to stream into; it appears at ``rel`` whole when the block ends (a temporary
        file renamed on local disk; on object stores the upload completes only on close)."""
        target = self.path(rel)
        if not self.is_local:
            with self.fs.open(target, "wb") as f:
                yield f
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(os.path.dirname(target))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def put_file(self, local_path: str, rel: str) -> None:
        """Upload (or on local disk, move) a finished local file to ``rel`` atomically."""
        target = self.path(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(local_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(local_path, target)
            _fsync_dir(os.path.dirname(target))
        else:
            self._retry(lambda: self.fs.put_file(local_path, target), "writing", rel)

    def create(self, rel: str, data: bytes) -> bool:
        """Write ``rel`` only if nothing is there; False when it already exists."""
        target = self.path(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = self._write_tmp(target, lambda f: f.write(data))
            try:
                os.link(tmp, target)  # atomic, and fails when the target exists
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            _fsync_dir(os.path.dirname(target))
            return True
        def attempt() -> bool:
            try:
                self.fs.pipe_file(target, data, mode="create")
                return True
            except TypeError:  # a filesystem without exclusive create: check, then write
                if self.fs.exists(target):
                    return False
                self.fs.pipe_file(target, data)
                return True
            except (OSError, FileExistsError) as exc:
                if isinstance(exc, FileExistsError) or "pre-condition" in str(exc).lower() \
                        or "PreconditionFailed" in str(exc):
                    return False
                raise

        # A retried create whose first try landed answers False: callers that must know
        # compare the object with what they wrote.
        return self._retry(attempt, "creating", rel)

    def delete(self, rel: str, recursive: bool = False) -> None:
        target = self.path(rel)

        def attempt() -> None:
            try:
                if recursive:
                    if self.fs.exists(target):
                        self.fs.rm(target, recursive=True)
                else:
                    self.fs.rm_file(target)
            except FileNotFoundError:
                pass

        self._retry(attempt, "deleting", rel)

    def _write_tmp(self, target: str, write) -> str:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex[:12]}")
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _local_replace(self, target: str, write) -> None:
        tmp = self._write_tmp(target, write)
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(target))


def folder(location: str | os.PathLike, options: Mapping[str, Mapping[str, Any]] | None = None,
           retry_s: float | None = None) -> DataFolder:
    """A :class:`DataFolder` for a path or URL."""
    return DataFolder(str(location), options if options is not None else {}, retry_s)
