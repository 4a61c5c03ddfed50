"""Local engine: a process pool over work units, models loaded once per worker process.

At most two units per worker are in flight, so memory stays flat however large the input.
With one worker, units run in this process.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator

from echoforge.errors import EchoforgeError
from echoforge.pipeline.engines.base import Engine, engines
from echoforge.pipeline.job import Job
from echoforge.pipeline.workunits import WorkUnit

_worker_job: Job | None = None
_worker_stages = None


def _init_worker(job: Job) -> None:
    global _worker_job, _worker_stages
    _worker_job = job
    _worker_stages = job.stages()
    for stage in _worker_stages:
        stage.ensure_setup()


def _run_unit(unit: WorkUnit) -> dict[str, Any]:
    return _worker_job.process(unit, _worker_stages)


@engines.register("local")
class LocalEngine(Engine):
    name = "local"

    def __init__(self, workers: int = 1, **options: Any):
        super().__init__(workers, **options)
        self._pool: ProcessPoolExecutor | None = None

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if self.workers <= 1 or len(units) <= 1:
            stages = job.stages()
            for unit in units:
                yield job.process(unit, stages)
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(job,)
        )
        todo = iter(units)
        running: set[Future] = set()
        for unit in todo:
            running.add(self._pool.submit(_run_unit, unit))
            if len(running) >= 2 * self.workers:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    entry = fut.result()
                except BrokenProcessPool:
                    raise EchoforgeError(
                        "a worker process died (out of memory or killed); committed work units are kept, "
                        "rerun the same command to resume (with fewer --workers if memory is short)"
                    ) from None
                yield entry
                nxt = next(todo, None)
                if nxt is not None:
                    running.add(self._pool.submit(_run_unit, nxt))
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
