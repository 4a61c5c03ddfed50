"""Speech-unit tokenizers, registered by name."""

from echoforge.backends.units import codec as _codec  # noqa: F401  (imports torch only in setup)
from echoforge.backends.units import encodec as _encodec  # noqa: F401
from echoforge.backends.units import hubert as _hubert  # noqa: F401
from echoforge.backends.units import whisper_kmeans as _whisper_kmeans  # noqa: F401
from echoforge.backends.units.base import KMeansCodebook, UnitTokenizer, create_tokenizer
from echoforge.registry import unit_tokenizers

__all__ = ["KMeansCodebook", "UnitTokenizer", "create_tokenizer", "unit_tokenizers"]
