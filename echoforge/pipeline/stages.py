"""The default chain of stages, and running a chain over one batch of input rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from echoforge.config import BuildConfig
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.align import Align
from echoforge.transforms.base import Stage, batched
from echoforge.transforms.gate import Gate
from echoforge.transforms.ingest import Ingest
from echoforge.transforms.listen import Listen
from echoforge.transforms.speakable import Speakable
from echoforge.transforms.synthesize import Synthesize
from echoforge.transforms.tokenize import Tokenize

STAGE_CLASSES: tuple[type[Stage], ...] = (Ingest, Speakable, Synthesize, Tokenize, Align, Gate, Listen)


def build_stages(config: BuildConfig) -> list[Stage]:
    """Fresh (not yet set up) instances of every stage, in order."""
    return [cls(config) for cls in STAGE_CLASSES]


@dataclass
class ChainResult:
    kept: list[Turn]
    rejected: list[Reject]
    seconds: dict[str, float] = field(default_factory=dict)


def run_stage(stage: Stage, records: list, seconds: dict[str, float]) -> tuple[list[Turn], list[Reject]]:
    """Run one stage over records in its own batch size, timing it."""
    stage.ensure_setup()
    kept: list[Turn] = []
    rejected: list[Reject] = []
    t0 = time.perf_counter()
    for batch in batched(records, stage.resources.batch_size):
        k, r = stage.process(batch)
        kept.extend(k)
        rejected.extend(r)
    seconds[stage.name] = seconds.get(stage.name, 0.0) + time.perf_counter() - t0
    return kept, rejected


def run_chain(stages: list[Stage], rows: list) -> ChainResult:
    """Run input rows through every stage; each stage sees what the one before kept."""
    result = ChainResult([], [])
    records = rows
    for stage in stages:
        records, rejected = run_stage(stage, records, result.seconds)
        result.rejected.extend(rejected)
    result.kept = records
    return result


def identities(stages: list[Stage]) -> dict[str, str]:
    """Identity of every model the stages use (stages are set up first if needed)."""
    out: dict[str, str] = {}
    for s in stages:
        s.ensure_setup()
        out.update(s.identity())
    return out
