"""The stage contract shared by every transform and every engine.

A stage is configured from :class:`~echoforge.config.BuildConfig`, loads its models once in
:meth:`Stage.setup`, and maps a batch of records to ``(kept, rejected)`` in
:meth:`Stage.process`. It declares the resources it wants; engines apply them. A stage never
raises for one bad record: it turns the failure into a :class:`Reject`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar, Generic, Iterable, TypeVar

from echoforge.config import BuildConfig
from echoforge.native import limit_malloc_arenas, one_math_thread
from echoforge.schemas.records import Reject, Turn

log = logging.getLogger(__name__)

In = TypeVar("In")


@dataclass(frozen=True)
class Resources:
    """What a stage asks of the engine that runs it."""

    batch_size: int = 16
    num_cpus: float = 1.0
    num_gpus: float = 0.0  # used only where GPUs exist


class Stage(Generic[In]):
    """Base class of engine-free stages."""

    name: ClassVar[str]

    def __init__(self, config: BuildConfig):
        self.config = config
        self._ready = False

    @property
    def resources(self) -> Resources:
        return Resources()

    def setup(self) -> None:
        """Load models and other heavy state; called once per worker before any batch."""

    def ensure_setup(self) -> None:
        if not self._ready:
            limit_malloc_arenas()  # a process that runs stages runs their native model code
            one_math_thread()
            self.setup()
            one_math_thread()  # and the libraries the set-up loaded
            self._ready = True

    def identity(self) -> dict[str, str]:
        """Name, version and checksum of every model this stage uses (for the manifest)."""
        return {}

    def process(self, batch: list[In]) -> tuple[list[Turn], list[Reject]]:
        """Map a batch to kept records and rejects. Subclasses override this or process_one."""
        kept: list[Turn] = []
        rejected: list[Reject] = []
        for record in batch:
            try:
                out = self.process_one(record)
            except StageReject as r:
                rejected.append(Reject.of(record, self.name, r.reason, r.detail))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the batch
                log.debug("stage %s failed on %s", self.name, getattr(record, "id", "?"), exc_info=True)
                rejected.append(Reject.of(record, self.name, "error", f"{type(exc).__name__}: {exc}"))
                continue
            kept.append(out)
        return kept, rejected

    def process_one(self, record: In) -> Turn:
        raise NotImplementedError


class StageReject(Exception):
    """Raised inside ``process_one`` to reject the record with a reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def batched(items: Iterable[In], size: int) -> Iterable[list[In]]:
    batch: list[In] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
