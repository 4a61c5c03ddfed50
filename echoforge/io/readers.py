"""Input readers: JSONL, JSON, Parquet and CSV files on any filesystem, and `datasets` datasets.

Every reader turns an input into numbered rows. A row that cannot be read (invalid JSON,
bytes that are not UTF-8, a CSV line with the wrong number of fields) is still a row: it
carries an error instead of data and becomes a reject with its position, so nothing is lost
silently. Readers count rows and remember where slices start, so a work unit reads only its
own slice. Files are opened through :mod:`echoforge.storage`, so a local path, ``s3://``,
``gs://`` and ``hf://`` work alike.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import re
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from echoforge.errors import InputError
from echoforge.hashing import sha256_of
from echoforge.storage import StorageError, filesystem, is_remote

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
# A CSV field may be as long as any text field (csv's default limit is 131,072 characters).
csv.field_size_limit(2**31 - 1)
MAX_ROW_BYTES = 8 << 20
CHUNK = 1 << 20  # bytes read at a time by the streaming readers
FILE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
                ".csv": "csv", ".tsv": "csv"}


@dataclass(frozen=True)
class RawRow:
    """One input row: its data, or the reason it could not be read."""

    source: str
    position: int  # 0-based row number within the input
    data: dict[str, Any] | None
    error: str | None = None
    where: str = ""  # human position, e.g. "row 12"
    work_unit: int = -1
    source_id: str = ""  # the input's full identity (location, or Hub name and split): ids derive from it

    @property
    def label(self) -> str:
        return f"{self.source}:{self.where or f'row {self.position}'}"


@dataclass(frozen=True)
class InputSpec:
    """A resolved input: what it is and how to open it."""

    uri: str
    kind: str  # jsonl | json | parquet | csv | datasets-disk | datasets-hub
    name: str  # the `source` column value
    offsets: tuple[int, ...] = field(default=(), compare=False)  # byte offset of each slice start
    rows: int = 0
    checksum: str = ""  # content: sha256 of the file, or the dataset's fingerprint / Hub revision
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # storage options
    max_row_bytes: int = MAX_ROW_BYTES  # a longer JSONL line or JSON item is a reject, never read whole

    @property
    def identity(self) -> str:
        """What row ids are derived from: the full location (or Hub name and split); the
        package's bundled samples are named by their place in the package, so their ids are
        the same on every machine."""
        if self.kind == "datasets-hub":
            return f"hf:{self.name}"
        if not is_remote(self.uri) and Path(self.uri).parent == PACKAGE_DATA:
            return f"echoforge:data/{Path(self.uri).name}"
        return self.uri


def _open(spec_or_uri: InputSpec | str, options: Mapping[str, Any] | None = None) -> IO[bytes]:
    uri = spec_or_uri.uri if isinstance(spec_or_uri, InputSpec) else spec_or_uri
    opts = spec_or_uri.options if isinstance(spec_or_uri, InputSpec) else options
    fs, path = filesystem(uri, opts)
    return fs.open(path, "rb")


def resolve_input(uri: str, split: str = "train", options: Mapping[str, Any] | None = None,
                  max_row_bytes: int = MAX_ROW_BYTES) -> InputSpec:
    """Identify an input by path, URL or Hub name, without reading it.

    Local paths are made absolute, so that workers in other directories (Ray, Beam) find them.
    """
    spec = _resolve(uri, split, options if options is not None else {})  # as given: StorageOptions hide secrets
    return dataclasses.replace(spec, max_row_bytes=max_row_bytes)


def _resolve(uri: str, split: str, options: Mapping[str, Any]) -> InputSpec:
    remote = is_remote(uri)
    if not remote and not Path(uri).exists() and "/" in uri and not uri.startswith((".", "/", "~")) \
            and not Path(uri).suffix:
        return InputSpec(uri, "datasets-hub", f"{uri}:{split}", options=options)
    try:
        fs, path = filesystem(uri, options)
        found = fs.exists(path)
        is_dir = found and fs.isdir(path)
    except StorageError as exc:
        raise InputError(str(exc)) from None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line
        raise InputError(f"cannot open input {uri}: {type(exc).__name__}: {str(exc)[:200]}") from None
    location = uri if remote else str(Path(uri).absolute())
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if is_dir:
        base = path.rstrip("/")
        if fs.exists(f"{base}/dataset_dict.json"):  # a saved DatasetDict: the split is part of the name
            return InputSpec(location, "datasets-disk", f"{name}:{split}", options=options)
        if fs.exists(f"{base}/dataset_info.json") or fs.exists(f"{base}/state.json"):
            return InputSpec(location, "datasets-disk", name, options=options)
        raise InputError(f"{uri} is a directory but not a saved `datasets` dataset")
    if found:
        ext = Path(name).suffix.lower()
        kind = FILE_FORMATS.get(ext)
        if kind is None:
            raise InputError(
                f"{uri}: unknown file type '{ext}'; use one of {', '.join(sorted(FILE_FORMATS))}"
            )
        return InputSpec(location, kind, name, options=options)
    raise InputError(f"input not found: {uri}")


# --- line-based files (JSONL, CSV): one pass to count rows and remember slice offsets ---


def _bounded_lines(f: IO[bytes], max_bytes: int, digest: Any = None) -> Iterator[tuple[int, bytes | None, int]]:
    """(byte offset, line, length) of every line; a line longer than ``max_bytes`` is skipped
    in pieces (never held whole) and given as None."""
    offset = 0
    while True:
        line = f.readline(max_bytes + 1)
        if not line:
            return
        length = len(line)
        if digest is not None:
            digest.update(line)
        if length > max_bytes and not line.endswith(b"\n"):
            while True:
                rest = f.readline(CHUNK)
                if digest is not None:
                    digest.update(rest)
                length += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield offset, None, length
        else:
            yield offset, line, length
        offset += length


def _line_rows(spec: InputSpec, digest: Any = None) -> Iterator[tuple[int, bytes | None]]:
    """(byte offset, line bytes or None when too long) of every non-blank line."""
    with _open(spec) as f:
        for offset, line, _ in _bounded_lines(f, spec.max_row_bytes, digest):
            if line is None or line.strip():
                yield offset, line


_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


def _csv_offsets(spec: InputSpec, digest: Any = None) -> Iterator[int]:
    """Byte offset of each CSV record (records may span lines)."""
    with _open(spec) as f:
        pos = [0]
        header_done = [False]

        def lines() -> Iterator[str]:
            for raw in f:
                if digest is not None:
                    digest.update(raw)
                for piece in _LONE_CR.split(raw):  # a lone \r ends a line, as for the reader (newline="")
                    pos[0] += len(piece)
                    yield piece.decode("utf-8", errors="replace")

        reader = csv.reader(lines())
        start = 0
        for _ in reader:
            if header_done[0]:
                yield start
            header_done[0] = True
            start = pos[0]


def _file_sha256(spec: InputSpec) -> str:
    with _open(spec) as f:
        return sha256_of(f)


def scan_input(spec: InputSpec, slice_rows: int, limit: int | None = None) -> InputSpec:
    """Count rows, record where every slice of ``slice_rows`` rows starts, and checksum the
    content (one streaming pass for line-based files and JSON arrays). With ``limit``, only
    the first ``limit`` rows are scanned (the checksum covers what was read for them)."""
    def done(offsets: tuple[int, ...], rows: int, checksum: str) -> InputSpec:
        return dataclasses.replace(spec, offsets=offsets, rows=rows, checksum=checksum)

    if spec.kind in ("jsonl", "csv"):
        digest = hashlib.sha256()
        offsets, n = [], 0
        starts = (off for off, _ in _line_rows(spec, digest)) if spec.kind == "jsonl" else _csv_offsets(spec, digest)
        for off in starts if limit != 0 else ():
            if n % slice_rows == 0:
                offsets.append(off)
            n += 1
            if n == limit:  # stop before reading further
                break
        return done(tuple(offsets), n, digest.hexdigest())
    if spec.kind == "json":
        with _open(spec) as f:
            hashed = _Hashing(f)
            if _first_byte(hashed) != b"[":  # not an array: one document, read whole
                hashed.drain()
                return done((), len(_load_json(spec)), hashed.digest.hexdigest())
            offsets, n = [], 0
            for off, _, _ in _array_items(hashed, hashed.pos, keep=False, max_bytes=spec.max_row_bytes):
                if n % slice_rows == 0:
                    offsets.append(off)
                n += 1
                if n == limit:
                    break
            if n != limit:
                hashed.drain()
        return done(tuple(offsets), n, hashed.digest.hexdigest())
    if spec.kind == "parquet":
        import pyarrow.parquet as pq

        try:
            with _open(spec) as f:
                meta = pq.ParquetFile(f, pre_buffer=False).metadata
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure means unreadable
            raise InputError(f"{spec.uri} is not a readable Parquet file ({exc})") from None
        n = meta.num_rows if limit is None else min(meta.num_rows, limit)
        return done((), n, _parquet_checksum(spec, meta, n))
    ds = _load_dataset(spec.kind, spec.uri, spec.name)
    return done((), len(ds) if limit is None else min(len(ds), limit), _dataset_revision(ds, spec))


def _parquet_checksum(spec: InputSpec, meta: Any, rows: int) -> str:
    """sha256 of the whole file; of the first ``rows`` rows, when fewer: the bytes of the row
    groups that hold them and the footer's schema."""
    if rows >= meta.num_rows:
        return _file_sha256(spec)
    digest = hashlib.sha256(str(meta.schema).encode())
    with _open(spec) as f:
        first = 0
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            starts = [group.column(c).dictionary_page_offset or group.column(c).data_page_offset
                      for c in range(group.num_columns)]
            f.seek(min(starts))
            left = group.total_compressed_size if hasattr(group, "total_compressed_size") else group.total_byte_size
            while left > 0:
                block = f.read(min(CHUNK, left))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
            first += group.num_rows
            if first >= rows:
                break
    return digest.hexdigest()


def _dataset_revision(ds: Any, spec: InputSpec) -> str:
    """Content identity of a `datasets` input: its fingerprint (content-derived for saved
    datasets), or the Hub revision when it can be looked up."""
    if spec.kind == "datasets-hub":
        try:
            from huggingface_hub import HfApi

            return "revision:" + HfApi().dataset_info(spec.name.rpartition(":")[0]).sha
        except Exception:  # noqa: BLE001 - offline: the fingerprint still identifies the content
            pass
    return "fingerprint:" + str(getattr(ds, "_fingerprint", ""))


def read_slice(spec: InputSpec, start: int, stop: int, slice_rows: int, offset: int | None = None) -> Iterator[RawRow]:
    """Rows ``start`` (inclusive) to ``stop`` (exclusive) of an input; ``offset``: the byte
    where row ``start`` begins, when the caller knows it (else the spec's offsets say)."""
    if offset is not None:  # offsets[start // slice_rows] is where the slice starts
        spec = dataclasses.replace(spec, offsets=(0,) * (start // slice_rows) + (offset,))
    if spec.kind == "jsonl":
        yield from _read_jsonl(spec, start, stop, slice_rows)
    elif spec.kind == "csv":
        yield from _read_csv(spec, start, stop, slice_rows)
    elif spec.kind == "json":
        yield from _read_json(spec, start, stop, slice_rows)
    elif spec.kind == "parquet":
        yield from _read_parquet(spec, start, stop)
    else:
        ds = _load_dataset(spec.kind, spec.uri, spec.name)
        for i in range(start, min(stop, len(ds))):
            yield _as_row(spec.name, i, ds[i], f"row {i}")


def _as_row(source: str, position: int, item: Any, where: str) -> RawRow:
    if isinstance(item, _Unreadable):
        return RawRow(source, position, None, item.reason, where)
    if not isinstance(item, dict):
        return RawRow(source, position, None, f"row is a {type(item).__name__}, not an object", where)
    return RawRow(source, position, item, None, where)


def _slice_offset(spec: InputSpec, start: int, slice_rows: int) -> tuple[int, int]:
    """Byte offset to seek to and the row number found there."""
    k = start // slice_rows
    if spec.offsets and k < len(spec.offsets):
        return spec.offsets[k], k * slice_rows
    return 0, 0


def _read_jsonl(spec: InputSpec, start: int, stop: int, slice_rows: int) -> Iterator[RawRow]:
    offset, row = _slice_offset(spec, start, slice_rows)
    with _open(spec) as f:
        f.seek(offset)
        for _, line, length in _bounded_lines(f, spec.max_row_bytes):
            if line is not None and not line.strip():
                continue
            if row >= stop:
                break
            if row >= start:
                yield (_parse_json_line(spec.name, row, line) if line is not None else
                       RawRow(spec.name, row, None, f"a line of {length} bytes, longer than "
                              f"ingest.max_row_bytes={spec.max_row_bytes}", f"row {row}"))
            row += 1


def _parse_json_line(source: str, row: int, line: bytes, where: str = "") -> RawRow:
    where = where or f"row {row}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRow(source, row, None, f"bytes that are not UTF-8 at byte {exc.start}", where)
    try:
        item = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return RawRow(source, row, None, _json_error(exc), where)
    return _as_row(source, row, item, where)


def _json_error(exc: Exception) -> str:
    """What is wrong with a JSON text, in one short line."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {str(exc)[:160]}"


def _read_csv(spec: InputSpec, start: int, stop: int, slice_rows: int) -> Iterator[RawRow]:
    offset, row = _slice_offset(spec, start, slice_rows)
    delimiter = "\t" if spec.uri.lower().endswith(".tsv") else ","
    with _open(spec) as fb:
        header_line = fb.readline().decode("utf-8", errors="replace")
        header = next(csv.reader([header_line], delimiter=delimiter))
        if offset:
            fb.seek(offset)
        text = io.TextIOWrapper(fb, encoding="utf-8", errors="surrogateescape", newline="")
        for values in csv.reader(text, delimiter=delimiter):
            if row >= stop:
                break
            if row >= start:
                yield _csv_row(spec.name, row, header, values)
            row += 1


def _csv_row(source: str, row: int, header: list[str], values: list[str]) -> RawRow:
    where = f"record {row + 1}"
    if any("\udc80" <= ch <= "\udcff" for v in values for ch in v):
        return RawRow(source, row, None, "bytes that are not UTF-8", where)
    if len(values) != len(header):
        return RawRow(source, row, None, f"{len(values)} fields where the header has {len(header)}", where)
    return RawRow(source, row, dict(zip(header, values)), None, where)


def _read_parquet(spec: InputSpec, start: int, stop: int) -> Iterator[RawRow]:
    """Rows ``start:stop``: only the row groups that hold them are decoded, each once per
    process however many units it holds (the last one is kept, as Arrow, for the next
    unit), and only the unit's rows become Python objects."""
    first = 0
    for rg, n in enumerate(_parquet_group_rows(spec)):
        if first + n > start and first < stop:
            table = _parquet_group(spec.uri, spec.checksum, rg, _options_key(spec))
            lo, hi = max(start, first), min(stop, first + n)
            for i, item in enumerate(table.slice(lo - first, hi - lo).to_pylist(), start=lo):
                yield _as_row(spec.name, i, item, f"row {i}")
        first += n
        if first >= stop:
            break


_OPTIONS: dict[str, Mapping[str, Any]] = {}  # options by key: lru_cache keys must be hashable (and not secrets)


def _options_key(spec: InputSpec) -> str:
    key = str(id(spec.options))
    _OPTIONS[key] = spec.options
    return key


@functools.lru_cache(maxsize=64)
def _parquet_group_rows_cached(uri: str, checksum: str, options_key: str) -> tuple[int, ...]:
    import pyarrow.parquet as pq

    with _open(uri, _OPTIONS[options_key]) as f:
        meta = pq.ParquetFile(f, pre_buffer=False).metadata
    return tuple(meta.row_group(rg).num_rows for rg in range(meta.num_row_groups))


def _parquet_group_rows(spec: InputSpec) -> tuple[int, ...]:
    return _parquet_group_rows_cached(spec.uri, spec.checksum, _options_key(spec))


@functools.lru_cache(maxsize=1)
def _parquet_group(uri: str, checksum: str, rg: int, options_key: str):
    import pyarrow.parquet as pq

    with _open(uri, _OPTIONS[options_key]) as f:
        return pq.ParquetFile(f, pre_buffer=False).read_row_group(rg)


class _Hashing:
    """A binary file read through, with the sha256 of what was read."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.digest = hashlib.sha256()
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        block = self.f.read(n)
        self.digest.update(block)
        self.pos += len(block)
        return block

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _first_byte(f: Any) -> bytes:
    """The first non-blank byte of a file (consumed), or b""."""
    while True:
        block = f.read(1)
        if not block or not block.isspace():
            return block


class _Structure:
    """Where a JSON text's top-level array items end, found block by block with numpy (no
    Python work per character or per string): quotes not escaped by an odd run of
    backslashes open and close strings; brackets and commas outside strings count."""

    def __init__(self, depth: int):
        self.depth, self.in_string, self.backslashes = depth, False, 0

    def scan(self, block: bytes) -> tuple[list[int], int | None]:
        """Positions in ``block`` of the commas between items, and of the array's end (if there)."""
        import numpy as np

        a = np.frombuffer(block, np.uint8)
        n = len(a)
        if n == 0:
            return [], None
        idx = np.arange(n)
        bs = a == 92
        last_other = np.maximum.accumulate(np.where(bs, -1, idx))  # last non-backslash at or before i
        before = np.empty(n, np.int64)  # backslashes right before i
        before[0] = self.backslashes
        before[1:] = idx[:-1] - last_other[:-1] + np.where(last_other[:-1] < 0, self.backslashes, 0)
        quotes = (a == 34) & (before % 2 == 0)
        inside = (np.cumsum(quotes) + self.in_string) % 2 == 1
        outside = ~inside & ~quotes
        step = (outside & ((a == 91) | (a == 123))).astype(np.int64) - (outside & ((a == 93) | (a == 125)))
        depth = self.depth + np.cumsum(step)
        ends = np.flatnonzero((step < 0) & (depth == 0))
        end = int(ends[0]) if len(ends) else None
        commas = np.flatnonzero(outside & (a == 44) & (depth == 1))
        if end is not None:
            commas = commas[commas < end]
        self.depth = int(depth[-1])
        self.in_string = bool(inside[-1])
        self.backslashes = int(n - 1 - last_other[-1] + (self.backslashes if last_other[-1] < 0 else 0))
        return commas.tolist(), end


def _array_items(f: Any, offset: int, *, keep: bool, max_bytes: int,
                 chunk: int | None = None) -> Iterator[tuple[int, bytes | None, str]]:
    """The items of a JSON array read from ``f``, positioned just inside it at byte ``offset``
    (after the ``[`` or a separating ``,``): ``(byte offset, item bytes, problem)``.

    A streaming scan (:class:`_Structure`) finds where each item ends, so memory holds one
    block and one item at a time, never the file; items are parsed by the caller. ``problem``
    is ``""``, ``"too_large"`` (longer than ``max_bytes``: not kept) or ``"truncated:N"`` (the
    file ends, at byte N, before the array does: the last one yielded, with what there is of
    the item). Blank items (``[ ]``, a trailing comma) are skipped. With ``keep`` False no
    bytes are kept.
    """
    structure = _Structure(depth=1)
    pos = offset  # where the block read next starts
    start, pending, size, seen = offset, bytearray(), 0, False  # the current item: its bytes in earlier blocks

    def span(block: bytes, lo: int, hi: int) -> tuple[bool, bytes | None, str]:
        local = block[lo:hi]
        if size + len(local) > max_bytes:
            return True, None, "too_large"
        return seen or bool(local.strip()), (bytes(pending) + local) if keep else None, ""

    while True:
        block = f.read(chunk or CHUNK)
        if not block:  # the file ends inside the array
            yield start, bytes(pending) if keep and size <= max_bytes else None, f"truncated:{pos}"
            return
        commas, end = structure.scan(block)
        lo = 0
        for c in commas + ([end] if end is not None else []):
            nonblank, body, problem = span(block, lo, c)
            if nonblank:
                yield start, body, problem
            if c == end:
                return
            lo = c + 1
            start, pending, size, seen = pos + lo, bytearray(), 0, False
        rest = block[lo:]
        size += len(rest)
        seen = seen or bool(rest.strip())
        if keep and size <= max_bytes:
            pending += rest
        pos += len(block)


def _read_json(spec: InputSpec, start: int, stop: int, slice_rows: int) -> Iterator[RawRow]:
    offset, row = _slice_offset(spec, start, slice_rows)
    if not spec.offsets:  # not an array: one document, read whole
        for i, item in enumerate(_load_json(spec)[start:stop], start=start):
            yield _as_row(spec.name, i, item, f"item {i}")
        return
    with _open(spec) as f:
        f.seek(offset)
        for at, body, problem in _array_items(f, offset, keep=True, max_bytes=spec.max_row_bytes,
                                              chunk=min(CHUNK, 1 << 16)):  # a slice is small: read little past it
            if row >= stop:
                break
            if row >= start:
                if body is not None:  # where the item's first character is
                    at += len(body) - len(body.lstrip())
                where = f"item {row} at byte {at}"
                if problem.startswith("truncated"):
                    end = problem.partition(":")[2]
                    yield RawRow(spec.name, row, None, f"truncated JSON: {spec.name} ends at byte {end}, inside the "
                                 f"item that starts at byte {at} (the items before it are read)", where)
                elif problem == "too_large":
                    yield RawRow(spec.name, row, None, f"an item longer than ingest.max_row_bytes="
                                 f"{spec.max_row_bytes}", where)
                else:
                    yield _parse_json_line(spec.name, row, body, where)
            row += 1


class _Unreadable:
    def __init__(self, reason: str):
        self.reason = reason


@functools.lru_cache(maxsize=4)
def _load_json_cached(uri: str, version: str, options_key: str) -> list[Any]:
    with _open(uri, json.loads(options_key)) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_Unreadable(f"file has bytes that are not UTF-8 at byte {exc.start}")]
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return [_Unreadable(_json_error(exc))]
    if isinstance(data, dict):
        for key in ("data", "rows", "examples", "train"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    if isinstance(data, list):
        return data
    return [_Unreadable(f"top-level JSON is a {type(data).__name__}, not a list of objects")]


def _load_json(spec: InputSpec) -> list[Any]:
    fs, path = filesystem(spec.uri, spec.options)
    info = fs.info(path)
    version = str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("size"))
    return _load_json_cached(spec.uri, version, json.dumps(dict(spec.options), sort_keys=True, default=str))


@functools.lru_cache(maxsize=4)
def _load_dataset(kind: str, uri: str, name: str):
    """The dataset of an input; the split is the part of ``name`` after its last ':'."""
    import datasets

    repo, _, split = name.rpartition(":")
    try:
        if kind == "datasets-disk":
            ds = datasets.load_from_disk(uri)
            if isinstance(ds, datasets.DatasetDict):
                _check_split(uri, split, list(ds))
                ds = ds[split]
            return ds
        try:
            return datasets.load_dataset(repo, split=split)
        except Exception as load_error:
            try:
                available = datasets.get_dataset_split_names(repo)
            except Exception:  # noqa: BLE001 - the load error says more
                raise load_error from None
            _check_split(uri, split, available)
            raise
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any loading failure as one line
        raise InputError(f"cannot load dataset {uri}: {type(exc).__name__}: {str(exc)[:200]}") from None


def _check_split(uri: str, split: str, available: list[str]) -> None:
    if split not in available:
        raise InputError(f"{uri} has no split '{split}'; set ingest.split to one of: {', '.join(available)}")
