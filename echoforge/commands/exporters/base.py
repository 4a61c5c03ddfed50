"""What every exporter shares: the registry, the options, and the helpers its shards are made of.

An exporter is a class registered by name. It lists its stages (the file sets it can write,
each with the build columns it reads) and writes one shard: given a split, a shard index,
the stages still to write and an iterator over the shard's rows, it writes its files through
the output's :class:`~echoforge.storage.DataFolder` and returns, per stage, the files it wrote.
The driver (:mod:`echoforge.commands.export`) decides which rows make each shard, skips
finished shards and writes a marker per shard and stage once its files are whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tarfile
import tempfile
from typing import IO, Any, ClassVar, Iterator, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

from echoforge.audio import decode_audio, resample, to_pcm16
from echoforge.registry import Registry
from echoforge.storage import DataFolder


class ExportOptions(BaseModel):
    """Settings an export is made with; ``shard_size`` fixes which rows make each shard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: PositiveInt = 1000  #: rows per shard of each split
    audio_format: Literal["wav", "flac"] = "wav"  #: loose audio files (echox, nemo)
    absolute_paths: bool = False  #: lines point at audio by full path or URL (echox, nemo)
    tarred: bool = False  #: nemo: audio in audio_<n>.tar shards


class Exporter:
    """A trainer's format: its stages (stage → build columns it reads) and how a shard is written."""

    stages: ClassVar[dict[str, list[str]]] = {}
    #: stages that need the answer audio (a build made with ``synthesis.keep_answer_audio: false`` has none)
    answer_audio_stages: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: ExportOptions):
        self.options = options

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        """Write shard ``index`` of ``split`` for ``stages`` from ``rows``; return stage → files written."""
        raise NotImplementedError


exporters: Registry[type[Exporter]] = Registry("export format")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(row_id: str) -> str:
    """A row id as a file name and WebDataset key: letters, digits, ``_`` and ``-`` only (no path
    separators, no dots, so no ``..``); an id that had to change gets a short hash of itself."""
    clean = _UNSAFE.sub("_", row_id)
    if clean == row_id and clean:
        return clean
    return f"{clean[:80]}_{hashlib.sha256(row_id.encode()).hexdigest()[:10]}"


def units_of(rows: list[list[int]] | None) -> list[int] | list[list[int]] | None:
    """One codebook: a flat list; several: one list per codebook."""
    if rows is None:
        return None
    return rows[0] if len(rows) == 1 else rows


def encode_audio(cell: dict[str, Any], fmt: str, rate: int | None = None) -> tuple[bytes, int, int]:
    """An audio cell of the build as ``fmt`` bytes (mono 16-bit), resampled to ``rate`` when given;
    returns ``(bytes, sample rate, samples)``. FLAC already at the rate is copied as it is."""
    import soundfile as sf

    data = cell["bytes"]
    info = sf.info(io.BytesIO(data))
    if fmt == "flac" and info.format == "FLAC" and info.channels == 1 and rate in (None, info.samplerate):
        return data, info.samplerate, info.frames
    audio, source_rate = decode_audio(data)
    rate = rate or source_rate
    audio = resample(audio, source_rate, rate)
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(audio), rate, format=fmt.upper(), subtype="PCM_16")
    return buf.getvalue(), rate, len(audio)


class TarSink:
    """A tar archive streamed into a binary stream; members have fixed metadata, so equal rows
    make equal bytes."""

    def __init__(self, stream: IO[bytes]):
        self._tar = tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT)

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()


@contextlib.contextmanager
def tar_sink(out: DataFolder, rel: str, gzip: bool = False) -> Iterator[TarSink]:
    """A :class:`TarSink` whose archive (gzip-compressed, with no timestamp, when asked)
    appears at ``rel`` whole when the block ends."""
    with out.open_atomic(rel) as stream, contextlib.ExitStack() as stack:
        if gzip:
            import gzip as gz

            stream = stack.enter_context(gz.GzipFile(fileobj=stream, mode="wb", mtime=0, filename=""))
        sink = TarSink(stream)
        yield sink
        sink.close()


@contextlib.contextmanager
def local_staging(out: DataFolder) -> Iterator[tuple[str, Any]]:
    """A local folder for writers that write only to local paths, and ``upload(name, rel)``
    that moves a finished file from it to ``rel`` in the output."""
    with tempfile.TemporaryDirectory(prefix="echoforge-export-") as tmp:
        yield tmp, lambda name, rel: out.put_file(os.path.join(tmp, name), rel)
