"""Where everything of a build lives, and which work units make up each shard.

An output folder (local path or object-store URL), in the Hub layout so that
``datasets.load_dataset(DIR)`` and the Hub read it::

    README.md                                   dataset card: configs, features, figures
    manifest.json                               shards (rows, bytes, sha256), config, models, figures
    data/train-00003-of-00012.parquet           sealed shards, Hub-sized, many work units each
    data/validation-00000-of-00001.parquet
    rejects/rejects-00000-of-00001.parquet      rejects beside the data
    _echoforge/build.json                       what this folder is a build of (the resume guard)
    _echoforge/lease/0000000003.json            the running build's lease, by generation (one build at a time)
    _echoforge/units/00000/000123.json          commit marker of work unit 123 (in shard group 0)
    _echoforge/parts/000123/<attempt>/train.parquet   the unit's rows until its shard is sealed
    _echoforge/shards/train-00003.json          seal marker of a shard (written after the shard)

With ``format: arrow`` the sealed shards are the ``datasets`` Arrow layout instead
(``train/data-00003-of-00012.arrow`` + ``state.json``), which ``load_from_disk`` reads.

Shards are fixed at plan time: train shard *g* holds work units ``[g*U, (g+1)*U)``; the
validation and rejects shards of group *h* hold ``[h*U*K, (h+1)*U*K)`` (K chosen so that they
are about as large as a train shard). Markers live in the folder of their unit's large
group, so one listing tells whether a shard's units are all committed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from echoforge.config import OutputConfig
from echoforge.storage import DataFolder

SPLITS = ("train", "validation")
SHARD_KINDS = ("train", "validation", "rejects")
INTERNAL = "_echoforge"
BUILD = f"{INTERNAL}/build.json"
LEASE = f"{INTERNAL}/lease"
TMP = f"{INTERNAL}/tmp"  # seals are written here before they are renamed into place (local disk)

# Measured output per input row of the default pipeline on the bundled ShareGPT sample (answer
# audio kept / not kept); see docs/engines.md "Shards".
ROW_SIZE_KB = {True: 230.0, False: 40.0}


@dataclass(frozen=True)
class ShardPlan:
    """Which work units make up each shard; a pure function of the plan and the config."""

    num_units: int
    units_per_shard: int  # train shards
    aux_factor: int  # validation and rejects shards span this many train shards

    @classmethod
    def of(cls, num_units: int, rows_per_unit: int, output: OutputConfig, keep_answer_audio: bool) -> ShardPlan:
        row_kb = output.row_size_kb or ROW_SIZE_KB[keep_answer_audio]
        unit_mb = max(row_kb * rows_per_unit / 1000.0, 1e-6)
        train_mb = unit_mb * (1.0 - output.validation_fraction)
        per_shard = max(1, math.floor(output.shard_size_mb / train_mb))
        val_share = max(output.validation_fraction, 0.01)
        aux = max(1, round((1.0 - output.validation_fraction) / val_share))
        return cls(num_units, min(per_shard, max(num_units, 1)), aux)

    def span(self, kind: str) -> int:
        """Work units per shard of a kind."""
        return self.units_per_shard * (1 if kind == "train" else self.aux_factor)

    def count(self, kind: str) -> int:
        return max(1, math.ceil(self.num_units / self.span(kind)))

    def group(self, kind: str, unit: int) -> int:
        return unit // self.span(kind)

    def units(self, kind: str, group: int) -> range:
        span = self.span(kind)
        return range(group * span, min((group + 1) * span, self.num_units))

    def marker_group(self, unit: int) -> int:
        """The folder a unit's marker lives in: its validation/rejects group, which contains
        its train group."""
        return self.group("rejects", unit)


@dataclass(frozen=True)
class Layout:
    """Names of every object of a build inside its folder."""

    folder: DataFolder
    shards: ShardPlan
    format: str = "parquet"

    @property
    def num_units(self) -> int:
        return self.shards.num_units

    def shard(self, kind: str, group: int) -> str:
        n = self.shards.count(kind)
        if kind == "rejects":
            return f"rejects/rejects-{group:05d}-of-{n:05d}.parquet"
        if self.format == "arrow":
            return f"{kind}/data-{group:05d}-of-{n:05d}.arrow"
        return f"data/{kind}-{group:05d}-of-{n:05d}.parquet"

    def shard_format(self, kind: str) -> str:
        return "parquet" if kind == "rejects" else self.format

    def seal_marker(self, kind: str, group: int) -> str:
        return f"{INTERNAL}/shards/{kind}-{group:05d}.json"

    def marker_dir(self, unit: int) -> str:
        return f"{INTERNAL}/units/{self.shards.marker_group(unit):05d}"

    def marker(self, unit: int) -> str:
        return f"{self.marker_dir(unit)}/{unit:06d}.json"

    def part(self, unit: int, attempt: str, kind: str) -> str:
        return f"{INTERNAL}/parts/{unit:06d}/{attempt}/{kind}.parquet"
