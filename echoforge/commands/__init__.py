"""Application commands over finished builds (above the pipeline; the CLI calls these)."""
