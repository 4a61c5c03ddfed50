"""Application commands over finished builds (export, voices)."""
