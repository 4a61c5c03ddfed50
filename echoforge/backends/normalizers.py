"""Text normalisers: written form → spoken form (numbers, money, dates, units → words)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from echoforge.errors import require
from echoforge.registry import Registry

normalizers: Registry[TextNormalizer] = Registry("text normalizer")


class TextNormalizer:
    name = "none"

    def setup(self) -> None:
        pass

    def normalize(self, sentence: str) -> str:
        return sentence

    def identity(self) -> dict[str, str]:
        return {"normalizer": self.name}


normalizers.register("none")(TextNormalizer)


def default_cache_dir() -> Path:
    base = os.environ.get("ECHOFORGE_CACHE") or os.path.join(Path.home(), ".cache", "echoforge")
    return Path(base)


@normalizers.register("nemo")
class NemoNormalizer(TextNormalizer):
    """NeMo's English text normaliser; its grammars compile once into ``cache_dir``."""

    name = "nemo"

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "nemo"
        self._normalizer = None

    def setup(self) -> None:
        require("nemo_text_processing", "the nemo text normaliser", "nemo")
        # NeMo resets its logger's level on every call; a filter keeps its chatter out.
        logging.getLogger("NeMo-text-processing").addFilter(lambda r: r.levelno >= logging.ERROR)
        from nemo_text_processing.text_normalization.normalize import Normalizer

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            self._normalizer = Normalizer(input_case="cased", lang="en", cache_dir=str(self.cache_dir))

    def normalize(self, sentence: str) -> str:
        return self._normalizer.normalize(sentence, verbose=False, punct_post_process=True)

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"normalizer": f"nemo-text-processing=={version('nemo-text-processing')}"}
