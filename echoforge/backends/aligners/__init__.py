"""Word aligners: audio + its words → word time spans, registered by name."""

from echoforge.backends.aligners import ctc as _ctc  # noqa: F401  (imports torch and hama only in setup)
from echoforge.backends.aligners.base import AlignItem, WordAligner, create_aligner
from echoforge.registry import word_aligners

__all__ = ["AlignItem", "WordAligner", "create_aligner", "word_aligners"]
