"""echoforge: build echo-training corpora for speech-to-speech LLMs."""

__version__ = "0.1.0"
