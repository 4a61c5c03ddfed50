"""Text rules: what in written text is speakable, and how it is said."""
