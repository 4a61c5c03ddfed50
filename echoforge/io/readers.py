"""Input readers: local JSONL, JSON, Parquet and CSV files, and `datasets` datasets.

Every reader turns an input into numbered rows. A row that cannot be read (invalid JSON,
bytes that are not UTF-8, a CSV line with the wrong number of fields) is still a row: it
carries an error instead of data and becomes a reject with its position, so nothing is lost
silently. Readers count rows and remember where slices start, so a work unit reads only its
own slice.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from echoforge.errors import InputError

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


def resolve_input(uri: str, split: str = "train") -> InputSpec:
    """Identify an input by path or name, without reading it.

    Local paths are made absolute, so that workers in other directories (Ray, Beam) find them.
    """
    p = Path(uri).absolute()
    if p.is_dir():
        if (p / "dataset_dict.json").exists():  # a saved DatasetDict: the split is part of the name
            return InputSpec(str(p), "datasets-disk", f"{p.name}:{split}")
        if (p / "dataset_info.json").exists() or (p / "state.json").exists():
            return InputSpec(str(p), "datasets-disk", p.name)
        raise InputError(f"{uri} is a directory but not a saved `datasets` dataset")
    if p.exists():
        ext = "".join(p.suffixes[-1:]).lower()
        kind = FILE_FORMATS.get(ext)
        if kind is None:
            raise InputError(
                f"{uri}: unknown file type '{ext}'; use one of {', '.join(sorted(FILE_FORMATS))}"
            )
        return InputSpec(str(p), kind, p.name)
    if uri.startswith("hf://") or ("/" in uri and not uri.startswith((".", "/")) and not Path(uri).suffix):
        name = uri.removeprefix("hf://")
        return InputSpec(name, "datasets-hub", f"{name}:{split}")
    raise InputError(f"input not found: {uri}")


# --- line-based files (JSONL, CSV): one pass to count rows and remember slice offsets ---


def _line_rows(path: str) -> Iterator[tuple[int, bytes, int]]:
    """Yield (byte offset, line bytes, line number) of every non-blank line."""
    with open(path, "rb") as f:
        offset = 0
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield offset, line, lineno
            offset += len(line)


def _csv_offsets(path: str) -> Iterator[int]:
    """Byte offset of each CSV record (records may span lines)."""
    with open(path, "rb") as f:
        pos = [0]
        header_done = [False]

        def lines() -> Iterator[str]:
            for raw in f:
                pos[0] += len(raw)
                yield raw.decode("utf-8", errors="replace")

        reader = csv.reader(lines())
        start = 0
        for _ in reader:
            if header_done[0]:
                yield start
            header_done[0] = True
            start = pos[0]


def scan_input(spec: InputSpec, slice_rows: int) -> InputSpec:
    """Count rows and record where every slice of ``slice_rows`` rows starts."""
    if spec.kind == "jsonl":
        offsets, n = [], 0
        for off, _, _ in _line_rows(spec.uri):
            if n % slice_rows == 0:
                offsets.append(off)
            n += 1
        return InputSpec(spec.uri, spec.kind, spec.name, tuple(offsets), n)
    if spec.kind == "csv":
        offsets, n = [], 0
        for off in _csv_offsets(spec.uri):
            if n % slice_rows == 0:
                offsets.append(off)
            n += 1
        return InputSpec(spec.uri, spec.kind, spec.name, tuple(offsets), n)
    if spec.kind == "json":
        return InputSpec(spec.uri, spec.kind, spec.name, (), len(_load_json(spec.uri)))
    if spec.kind == "parquet":
        import pyarrow.parquet as pq

        try:
            n = pq.ParquetFile(spec.uri).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure means unreadable
            raise InputError(f"{spec.uri} is not a readable Parquet file ({exc})") from None
        return InputSpec(spec.uri, spec.kind, spec.name, (), n)
    ds = _load_dataset(spec.kind, spec.uri, spec.name)
    return InputSpec(spec.uri, spec.kind, spec.name, (), len(ds))


def read_slice(spec: InputSpec, start: int, stop: int, slice_rows: int) -> Iterator[RawRow]:
    """Rows ``start`` (inclusive) to ``stop`` (exclusive) of an input."""
    if spec.kind == "jsonl":
        yield from _read_jsonl(spec, start, stop, slice_rows)
    elif spec.kind == "csv":
        yield from _read_csv(spec, start, stop, slice_rows)
    elif spec.kind == "json":
        for i, item in enumerate(_load_json(spec.uri)[start:stop], start=start):
            yield _as_row(spec.name, i, item, f"item {i}")
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
    with open(spec.uri, "rb") as f:
        f.seek(offset)
        for line in f:
            if not line.strip():
                continue
            if row >= stop:
                break
            if row >= start:
                yield _parse_json_line(spec.name, row, line)
            row += 1


def _parse_json_line(source: str, row: int, line: bytes) -> RawRow:
    where = f"row {row}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRow(source, row, None, f"bytes that are not UTF-8 at byte {exc.start}", where)
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        return RawRow(source, row, None, f"invalid JSON: {exc.msg} at column {exc.colno}", where)
    return _as_row(source, row, item, where)


def _read_csv(spec: InputSpec, start: int, stop: int, slice_rows: int) -> Iterator[RawRow]:
    offset, row = _slice_offset(spec, start, slice_rows)
    delimiter = "\t" if spec.uri.lower().endswith(".tsv") else ","
    with open(spec.uri, "rb") as fb:
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
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(spec.uri)
    first = 0
    for rg in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        if first + n > start and first < stop:
            rows = pf.read_row_group(rg).to_pylist()
            for i, item in enumerate(rows, start=first):
                if start <= i < stop:
                    yield _as_row(spec.name, i, item, f"row {i}")
        first += n
        if first >= stop:
            break


class _Unreadable:
    def __init__(self, reason: str):
        self.reason = reason


@functools.lru_cache(maxsize=4)
def _load_json_cached(path: str, mtime: float) -> list[Any]:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_Unreadable(f"file has bytes that are not UTF-8 at byte {exc.start}")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [_Unreadable(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    if isinstance(data, dict):
        for key in ("data", "rows", "examples", "train"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    if isinstance(data, list):
        return data
    return [_Unreadable(f"top-level JSON is a {type(data).__name__}, not a list of objects")]


def _load_json(path: str) -> list[Any]:
    return _load_json_cached(path, os.path.getmtime(path))


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
