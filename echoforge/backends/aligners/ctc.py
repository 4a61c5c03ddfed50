"""CTC forced alignment (``torchaudio.functional.forced_align``) of known words.

The words' tokens, with a word-separator token between words, are aligned to the frame
log-probabilities of a CTC acoustic model; a word starts at the first frame of its first token
and ends at the last frame of its last. Two models:

* ``hama``: the phoneme CTC model and the English G2P of the ``hama`` package (16 kHz, 20 ms
  frames, 191 IPA tokens, blank 190, ``<wb>`` between words); runs offline on CPU.
* ``wav2vec2``: any ``transformers`` ``Wav2Vec2ForCTC`` checkpoint with its CTC tokenizer (a
  local directory, or a Hub id when online), characters as tokens and ``|`` between words.

Long answers: a model that hears at most ``window_s`` of audio (hama: 30 s; it silently drops
the rest) gets overlapping windows whose middle frames are joined, and when the synthesiser's
sentence spans are given each sentence's words are aligned in its own stretch of frames (cut
halfway through the pauses), so a word the G2P spells wrongly cannot pull the rest of the answer
out of place.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import numpy as np

from echoforge.audio import resample
from echoforge.backends.aligners.base import AlignItem, WordAligner
from echoforge.registry import word_aligners
from echoforge.backends.speech_encoders import normalized, padded_encoder_states, preprocessor_normalizes
from echoforge.config import AlignConfig
from echoforge.errors import ConfigError, require
from echoforge.schemas.records import Word

CTC_RATE = 16_000


def spoken_word(word: str) -> str:
    """A word as the models spell it: lowercase letters and apostrophes."""
    return re.sub(r"[^a-z']", "", word.lower()).strip("'")


class CTCAligner(WordAligner):
    """Forced alignment over a CTC model's log-probabilities; subclasses give the model."""

    frame_s = 0.02
    blank = 0
    separator: int | None = None
    window_s: float | None = None  # the longest audio the model hears in one call (None: any length)
    context_s = 2.0  # audio heard on each side of the frames a window keeps

    def emissions_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """(frames, tokens) log-probabilities of each 16 kHz waveform (each within the window)."""
        raise NotImplementedError

    def word_tokens(self, word: str) -> list[int]:
        """Token ids of one word (empty when it has none)."""
        raise NotImplementedError

    def windows(self, n: int) -> list[tuple[int, int, int, int | None]]:
        """How to hear n samples: ``(lo, hi, first, count)`` per window: the model hears samples
        ``[lo, hi)`` and its frames ``[first, first + count)`` are kept (``None``: to the end)."""
        hop = round(self.frame_s * CTC_RATE)
        if self.window_s is None or n <= self.window_s * CTC_RATE:
            return [(0, n, 0, None)]
        context = int(self.context_s * CTC_RATE) // hop * hop
        step = int(self.window_s * CTC_RATE - 2 * context) // hop * hop
        out = []
        for start in range(0, n, step):
            lo, last = max(0, start - context), start + step >= n
            out.append((lo, n if last else start + step + context, (start - lo) // hop, None if last else step // hop))
        return out

    def emissions(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Log-probabilities of 16 kHz waveforms of any length: windows of all of them in one batch."""
        plans = [self.windows(len(w)) for w in waves]
        heard = iter(self.emissions_batch([w[lo:hi] for w, plan in zip(waves, plans) for lo, hi, _, _ in plan]))
        return [np.concatenate([next(heard)[first:None if count is None else first + count]
                                for _, _, first, count in plan]) for plan in plans]

    def align_batch(self, items: list[AlignItem]) -> list[list[Word | None]]:
        items = [AlignItem(*item) for item in items]
        waves = [resample(np.asarray(it.audio, dtype=np.float32), it.sample_rate, CTC_RATE) for it in items]
        return [self.place_sentences(em, it.words, it.sentences) for em, it in zip(self.emissions(waves), items)]

    def place_sentences(self, emissions: np.ndarray, words: list[str],
                        sentences: list[tuple[float, float, int]] | None) -> list[Word | None]:
        """Spans of the words, each sentence's in its own frames: from halfway through the pause
        before it to halfway through the pause after it (all frames at once without sentences)."""
        if not sentences:
            return self.place(emissions, words)
        if sum(n for _, _, n in sentences) != len(words):
            raise ValueError(f"{len(sentences)} sentences hold {sum(n for _, _, n in sentences)} words, "
                             f"not the {len(words)} words given")
        cuts = [0] + [min(len(emissions), round((a[1] + b[0]) / 2 / self.frame_s))
                      for a, b in itertools.pairwise(sentences)] + [len(emissions)]
        out: list[Word | None] = []
        for (_, _, n), lo, hi in zip(sentences, cuts, cuts[1:]):
            shift = lo * self.frame_s
            for p in self.place(emissions[lo:max(lo, hi)], words[len(out):len(out) + n]):
                out.append(None if p is None else Word(p.word, round(p.start_s + shift, 4), round(p.end_s + shift, 4)))
        return out

    def place(self, emissions: np.ndarray, words: list[str]) -> list[Word | None]:
        """Spans of the words in one utterance's log-probabilities."""
        torch = require("torch", "CTC forced alignment", "align")
        functional = require("torchaudio.functional", "CTC forced alignment", "align")
        targets: list[int] = []
        owner: list[int] = []  # the word of each target token (-1: a separator)
        for i, word in enumerate(words):
            tokens = self.word_tokens(word)
            if not tokens:
                continue
            if targets and self.separator is not None:
                targets.append(self.separator)
                owner.append(-1)
            targets.extend(tokens)
            owner.extend([i] * len(tokens))
        out: list[Word | None] = [None] * len(words)
        repeats = sum(a == b for a, b in zip(targets, targets[1:]))
        if not targets or len(emissions) < len(targets) + repeats:
            return out
        log_probs = torch.from_numpy(np.ascontiguousarray(emissions, dtype=np.float32))[None]
        path, scores = functional.forced_align(log_probs, torch.tensor([targets], dtype=torch.int32),
                                               blank=self.blank)
        spans = functional.merge_tokens(path[0], scores[0].exp(), blank=self.blank)
        if len(spans) != len(targets):
            return out
        for span, i in zip(spans, owner):
            if i < 0:
                continue
            start, end = span.start * self.frame_s, span.end * self.frame_s
            if out[i] is None:
                out[i] = Word(words[i], round(start, 4), round(end, 4))
            else:
                out[i].end_s = round(end, 4)
        return out


@word_aligners.register("hama")
class HamaAligner(CTCAligner):
    """The ``hama`` phoneme CTC model with its G2P (English words → IPA tokens)."""

    name = "hama"
    window_s = 30.0  # the model gives at most 1,500 frames: audio past 30 s is never heard

    def setup(self) -> None:
        hama = require("hama", "the hama CTC aligner", "align")
        self._asr = hama.ASRModel()
        self._g2p = hama.G2PModel()
        tokens = self._asr.decoder_tokens
        self.blank = int(self._asr.blank_id)
        self.separator = tokens.index("<wb>")
        self._index = {t: i for i, t in enumerate(tokens)}
        self.frame_s = 320 / float(self._asr.model_sample_rate)

    def emissions_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        a = self._asr
        out = []
        for wav in waves:  # the native engine runs one utterance per call
            log_probs, lengths = a.session.run([a._log_probs_output_name, a._out_lengths_output_name],
                                               {a._waveform_input_name: wav[None].astype(np.float32),
                                                a._waveform_lengths_input_name: np.array([len(wav)], np.int64)})
            out.append(np.asarray(log_probs[0][: int(np.asarray(lengths).reshape(-1)[0])], dtype=np.float32))
        return out

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one aligner per process; words repeat a lot
    def word_tokens(self, word: str) -> list[int]:
        w = spoken_word(word)
        if not w:
            return []
        phones = [al.phoneme for al in self._g2p.predict(w).alignments]
        return [self._index[p] for p in phones if p.strip() and p in self._index and p not in ("<wb>", "<blank>")]

    def identity(self) -> dict[str, str]:
        return {"aligner": f"hama phoneme CTC + G2P {_dist_version('hama')}".strip()}


@word_aligners.register("wav2vec2")
class Wav2Vec2Aligner(CTCAligner):
    """A ``transformers`` ``Wav2Vec2ForCTC`` checkpoint and its character CTC tokenizer."""

    name = "wav2vec2"
    uses_gpu = True

    def __init__(self, model: str | None = None, device: str = "cpu", pad_batches: bool | None = None):
        self.model_path, self.device, self.pad_batches = model, device, pad_batches

    @classmethod
    def from_config(cls, align: AlignConfig) -> Wav2Vec2Aligner:
        return cls(align.ctc.model, align.device)

    def setup(self) -> None:
        transformers = require("transformers", "the wav2vec2 CTC aligner", "torch")
        from echoforge.backends.units.base import torch_device

        if not self.model_path:
            raise ConfigError("the wav2vec2 aligner needs a Wav2Vec2ForCTC checkpoint (a directory or Hub id)")
        transformers.utils.logging.disable_progress_bar()
        try:
            model = transformers.Wav2Vec2ForCTC.from_pretrained(self.model_path)
            tokenizer = transformers.Wav2Vec2CTCTokenizer.from_pretrained(self.model_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a Wav2Vec2ForCTC with its tokenizer from {self.model_path} "
                              f"({str(exc).splitlines()[0]})") from None
        self._device = torch_device(self.device, "align.device")
        self._model = model.eval().to(self._device)
        if self.pad_batches is None:
            self.pad_batches = self._device == "cuda"
        vocab = tokenizer.get_vocab()
        self._index = dict(vocab)
        self.blank = int(tokenizer.pad_token_id)
        self.separator = vocab.get(tokenizer.word_delimiter_token)
        self._upper = not any(t.islower() for t in vocab if len(t) == 1)
        self.frame_s = math.prod(model.config.conv_stride) / CTC_RATE
        self._normalize = preprocessor_normalizes(self.model_path)

    def emissions_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """One padded batch on a GPU (or with ``pad_batches``), one at a time otherwise."""
        import torch

        if len(waves) > 1 and not self.pad_batches:
            return [self.emissions_batch([w])[0] for w in waves]
        waves = [normalized(w) if self._normalize else w for w in waves]
        states = padded_encoder_states(self._model.wav2vec2, waves, self._device)
        with torch.no_grad():
            return [torch.log_softmax(self._model.lm_head(s).float(), dim=-1).cpu().numpy() for s in states]

    def word_tokens(self, word: str) -> list[int]:
        w = spoken_word(word)
        w = w.upper() if self._upper else w
        return [self._index[c] for c in w if c in self._index]

    def identity(self) -> dict[str, str]:
        return {"aligner": f"wav2vec2 CTC {self.model_path}"}


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""
