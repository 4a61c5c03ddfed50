"""How far two word timings of the same words disagree: ``eval-units``' figures and the align
stage's check columns (``align.check``) both come from here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from echoforge.schemas.records import Word


def start_differences(reference_starts: Sequence[float], placed: Sequence[Word | None]) -> list[float]:
    """Placed start − reference start (seconds) of every word an aligner placed; both lists hold the
    same words in the same order."""
    return [p.start_s - start for start, p in zip(reference_starts, placed) if p is not None]


def alignment_figures(errors_s: list[float], words_total: int, prefix: str = "alignment") -> dict[str, Any]:
    """Figures of word-start errors (theirs − ours, seconds): median and 90th percentile of the
    absolute error in ms, the shares within 50 and 100 ms, the median signed error (> 0: the
    reference starts words later than we do) and how many words were matched."""
    signed = np.asarray(errors_s, dtype=np.float64)
    err = np.abs(signed)
    some = len(err) > 0
    return {
        f"{prefix}_median_start_error_ms": round(float(np.median(err)) * 1000, 1) if some else None,
        f"{prefix}_p90_start_error_ms": round(float(np.quantile(err, 0.9)) * 1000, 1) if some else None,
        f"{prefix}_within_50ms": round(float(np.mean(err <= 0.05)), 4) if some else None,
        f"{prefix}_within_100ms": round(float(np.mean(err <= 0.1)), 4) if some else None,
        f"{prefix}_median_signed_error_ms": round(float(np.median(signed)) * 1000, 1) if some else None,
        f"{prefix}_words_matched": len(err),
        f"{prefix}_words_total": int(words_total),
    }
