"""Local engine: a process pool over work units, models loaded once per worker process.

At most two units per worker are in flight, so memory stays flat however large the input.
With one worker, units run in this process. Workers commit their own units; only commit
entries come back.

A worker that dies (out of memory, a native crash) takes its units with it: the pool is
restarted and the units that were in flight run again one at a time, so a unit that kills
its worker on its own is known; after ``run.unit_attempts`` deaths it is quarantined (committed
with no rows and one reject naming its input range) and the build goes on.

Where CUDA devices exist, worker *i* sees only device ``i mod n`` (``CUDA_VISIBLE_DEVICES``),
so model stages spread over the GPUs instead of all landing on ``cuda:0``.

Elsewhere (no CUDA device, torch, whose OpenMP threads a fork does not survive, not imported,
and inputs and output on local disk: fsspec's object-store clients refuse to run in a forked
child), workers are forked from the driver after it has set the stages up, so they start
with its imports and models instead of loading their own (benchmarks/startup.py). A fork does
not copy threads: stages holding CTranslate2 models, which run on threads of their own, are
set up again in each worker from a cleared cache; the driver's copies are kept unused.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator

from echoforge.pipeline.engines.base import Engine
from echoforge.registry import engines
from echoforge.pipeline.job import Job
from echoforge.native import exit_now
from echoforge.pipeline.workunits import WorkUnit
from echoforge.storage import is_remote

_worker_job: Job | None = None
_worker_stages = None


def _init_worker(job: Job, devices: list[str], counter) -> None:
    global _worker_job, _worker_stages
    atexit.register(exit_now, 0)  # no native teardown abort when the pool shuts the worker down
    if devices:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[index % len(devices)]
    _worker_job = job
    _worker_stages = job.stages()
    for stage in _worker_stages:
        stage.ensure_setup()


#: Packages whose models run on threads of their own, which a forked process does not have.
THREADED = ("ctranslate2", "faster_whisper")


def _holds_threaded_model(obj: Any, depth: int = 3) -> bool:
    if type(obj).__module__.partition(".")[0] in THREADED:
        return True
    if depth == 0:
        return False
    children = (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple))
                else vars(obj).values() if hasattr(obj, "__dict__") else ())
    return any(_holds_threaded_model(c, depth - 1) for c in children)


def _init_forked(job: Job) -> None:
    """A worker forked from the driver: its set-up stages, with threaded models loaded anew."""
    global _worker_job, _worker_stages
    from echoforge.backends.asr import load_whisper

    load_whisper.cache_clear()  # the driver's models stay referenced by its stages, never freed here
    _worker_job = job
    _worker_stages = [type(s)(job.config) if _holds_threaded_model(s) else s for s in job.stages()]
    for stage in _worker_stages:
        stage.ensure_setup()


def _can_fork(job: Job, devices: list[str]) -> bool:
    """Fork from the driver where its stages are set up and nothing in it is known to break across a
    fork: no CUDA, no torch, and no object store (fsspec's async filesystems refuse to run in a
    forked child), for the output as for the inputs."""
    return ("fork" in mp.get_all_start_methods() and not devices and "torch" not in sys.modules
            and job._stages is not None and all(s._ready for s in job._stages)
            and job.layout.folder.is_local and not any(is_remote(spec.uri) for spec in job.plan.inputs))


def _run_unit(unit: WorkUnit) -> dict[str, Any]:
    return _worker_job.process(unit, _worker_stages)


def _cuda_devices() -> list[str]:
    """Visible CUDA device ids, without importing torch in the driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    try:
        import ctranslate2

        return [str(i) for i in range(ctranslate2.get_cuda_device_count())]
    except Exception:  # noqa: BLE001 - no CUDA runtime: CPU only
        return []


@engines.register("local")
class LocalEngine(Engine):
    name = "local"

    def __init__(self, workers: int = 1):
        super().__init__(workers)
        self._pool: ProcessPoolExecutor | None = None

    def _start_pool(self, job: Job, workers: int) -> ProcessPoolExecutor:
        devices = _cuda_devices()
        if _can_fork(job, devices):
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"),
                                             initializer=_init_forked, initargs=(job,))
            return self._pool
        ctx = mp.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(job, devices, ctx.Value("i", 0)))
        return self._pool

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if self.workers <= 1 or len(units) <= 1:
            stages = job.stages()
            for unit in units:
                yield job.process(unit, stages)
            return
        todo = deque(units)
        suspects: deque[WorkUnit] = deque()  # in flight when a worker died: rerun one at a time
        deaths: dict[int, int] = {}
        attempts = job.config.run.unit_attempts
        pool = self._start_pool(job, max(1, min(self.workers, len(units))))
        running: dict[Future, WorkUnit] = {}
        while todo or suspects or running:
            while not running and suspects:
                unit = suspects.popleft()
                running[pool.submit(_run_unit, unit)] = unit
            while not suspects and todo and len(running) < 2 * self.workers:
                unit = todo.popleft()
                running[pool.submit(_run_unit, unit)] = unit
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                unit = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    deaths[unit.index] = deaths.get(unit.index, 0) + 1
                    alone = len(done) == 1 and not running
                    if alone and deaths[unit.index] >= attempts:
                        yield job.quarantine(unit, "the worker process died (native crash or out of memory)",
                                             deaths[unit.index])
                    else:
                        suspects.append(unit)
            if broken:
                for fut, unit in running.items():
                    deaths[unit.index] = deaths.get(unit.index, 0) + 1
                    suspects.append(unit)
                running.clear()
                self.close()
                pool = self._start_pool(job, max(1, min(self.workers, len(units))))
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
