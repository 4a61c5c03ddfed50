"""Process settings for the native libraries that models run on."""

from __future__ import annotations

import ctypes
import functools
import os
import sys

_M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


@functools.cache
def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas (unless ``MALLOC_ARENA_MAX`` is set): CTranslate2 and
    onnxruntime allocate from their own threads, and every arena keeps its own peak, which
    measured about 40 MB more peak memory per worker on the default build."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc
        pass


def one_math_thread() -> None:
    """Run BLAS (and OpenMP) math on one thread in a process that runs stages. Worker processes
    are the unit of parallelism; and a BLAS call split over two threads rounds differently from
    one on a single thread (faster-whisper's mel filterbank in numpy: units changed between the
    local engine and Ray, which starts its workers with one thread), so rows would depend on
    where they were computed. Called after set-up too, for libraries a model loads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def exit_now(code: int = 0) -> None:
    """Flush and leave the process with ``code`` without the C++ teardown at exit.

    Model libraries (CTranslate2, onnxruntime) keep native thread pools whose static
    destructors can run after the interpreter has gone and abort the process
    (``terminate called without an active exception``, signal 6), whatever the build's
    outcome. Everything a build writes is committed (and fsynced) before this point.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing left to flush
            pass
    os._exit(code)
