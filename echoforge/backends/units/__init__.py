"""Speech-unit tokenizers, registered by name."""

from echoforge.backends.units.base import KMeansCodebook, UnitTokenizer, unit_tokenizers
from echoforge.backends.units import whisper_kmeans as _whisper_kmeans  # noqa: F401

__all__ = ["KMeansCodebook", "UnitTokenizer", "unit_tokenizers"]
