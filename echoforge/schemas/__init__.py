"""Record types and the output schema."""

from echoforge.schemas.records import Reject, Speech, Turn, Units, Word, dedup_frames

__all__ = ["Reject", "Speech", "Turn", "Units", "Word", "dedup_frames"]
