"""Text normalisers: written form → spoken form (numbers, money, dates, units → words)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
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


#: What NeMo's English normaliser (cased, deterministic) compiles into its cache directory.
NEMO_GRAMMARS = ("en_tn_True_deterministic_cased__tokenize.far", "en_tn_True_deterministic_verbalizer.far",
                 "en_tn_post_processing.far")


@normalizers.register("nemo")
class NemoNormalizer(TextNormalizer):
    """NeMo's English text normaliser; its grammars compile once into ``cache_dir``."""

    name = "nemo"

    def cold_cache_notice(self) -> str | None:
        """What to tell the user while the grammars compile, or None when they are cached."""
        if all((self.cache_dir / f).exists() for f in NEMO_GRAMMARS):
            return None
        return (f"compiling NeMo text-normalisation grammars into {self.cache_dir} (once; about a minute, "
                "longer on a busy machine); the build shows no progress until they are ready")

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "nemo"
        self._normalizer = None

    def setup(self) -> None:
        require("nemo_text_processing", "the nemo text normaliser", "nemo")
        # NeMo resets its logger's level on every call; a filter keeps its chatter out.
        logging.getLogger("NeMo-text-processing").addFilter(lambda r: r.levelno >= logging.ERROR)
        from nemo_text_processing.text_normalization.normalize import Normalizer

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        notice = self.cold_cache_notice()
        if notice:
            print(notice, file=sys.stderr, flush=True)
        with contextlib.redirect_stdout(io.StringIO()):
            self._normalizer = Normalizer(input_case="cased", lang="en", cache_dir=str(self.cache_dir))

    def normalize(self, sentence: str) -> str:
        return self._normalizer.normalize(sentence, verbose=False, punct_post_process=True)

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"normalizer": f"nemo-text-processing=={version('nemo-text-processing')}"}
