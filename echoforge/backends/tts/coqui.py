"""Coqui TTS backend (``coqui-tts``): VITS-family models, single- or multi-speaker, and XTTS
voice cloning from reference clips.

Voices are named by a model directory (``config.json`` and a ``.pth`` checkpoint, as coqui
writes and downloads them) or, online, by a coqui model name (``tts_models/en/vctk/vits``):

* ``DIR`` — the model's only (or default) speaker;
* ``DIR#SPEAKER`` — a speaker of a multi-speaker model, by name (``p225``) or index (``3``);
* ``DIR#CLIP.wav[,CLIP2.wav]`` — an XTTS model speaking in the voice of the reference clips.

Settings come from ``synthesis.coqui`` (device, language, VITS noise, batching, XTTS sampling).
Models load through coqui's own path (``load_config`` → ``setup_model`` → ``load_checkpoint``).
VITS gives per-symbol durations (``durations`` of its inference output, in frames of
``hop_length`` samples), which become phoneme (or character) and word spans as with Piper.
Sentences of similar length may run as one padded batch; each sentence's sampling noise is
drawn from its own seed, so the same text, voice, rate and seed give the same samples alone or
in a batch (:mod:`echoforge.backends.tts.coqui_compat`). XTTS gives no durations: its speech
has sentence spans only (no words), for a forced aligner to time its words.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from typing import Literal

from pydantic import Field

from echoforge.backends.tts.base import (
    TTSBackend,
    VoiceRequest,
    fit_length,
    peak_normalize,
    symbol_word_spans,
)
from echoforge.backends.tts.coqui_compat import fix_xtts_cache, masked_decoder, seeded_noise
from echoforge.config import Section, SynthesisConfig
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.registry import tts_backends
from echoforge.schemas.records import Speech, Word

_CHECKPOINTS = ("model.pth", "model_file.pth", "best_model.pth", "checkpoint.pth")
_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def checkpoint_of(model_dir: Path) -> Path:
    """The checkpoint file of a coqui model directory."""
    for name in _CHECKPOINTS:
        if (model_dir / name).is_file():
            return model_dir / name
    found = sorted(p for p in model_dir.glob("*.pth") if not p.name.startswith(("speakers", "speaker_", "dvae",
                                                                                  "mel_stats")))
    if not found:
        raise ConfigError(f"coqui voice: no checkpoint (.pth) in {model_dir}")
    return found[0]


def _resolve_model(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith("tts_models/"):
        manage = require("TTS.utils.manage", "coqui model downloads", "coqui")
        model_path, _, _ = manage.ModelManager().download_model(name)
        return Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
    raise ConfigError(f"coqui voice '{name}': no model directory there (config.json + checkpoint)")


def _local_paths(config, model_dir: Path) -> None:
    """Point the config's side files (speakers, d-vectors, languages) into the model directory.

    coqui writes absolute paths of the machine that trained or downloaded the model; a copied
    directory keeps the files beside the config.
    """
    keys = ("speakers_file", "d_vector_file", "language_ids_file")
    for section in (config, config.get("model_args")):
        if not section:
            continue
        for key in keys:
            value = section.get(key) if hasattr(section, "get") else None
            if isinstance(value, list):
                value = value[0] if value else None
            if value and not Path(value).exists() and (model_dir / Path(value).name).exists():
                section[key] = str(model_dir / Path(value).name)


@functools.lru_cache(maxsize=8)
def load_model(model_dir: str, device: str = "cpu"):
    """(coqui config, model in eval mode) of a model directory, loaded once per process."""
    require("six", "coqui TTS", "coqui")
    tts_config = require("TTS.config", "coqui TTS", "coqui")
    tts_models = require("TTS.tts.models", "coqui TTS", "coqui")
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ConfigError(f"coqui voice: no config.json in {path}")
    config = tts_config.load_config(str(path / "config.json"))
    _local_paths(config, path)
    model = tts_models.setup_model(config)
    if config.model.lower() == "xtts":
        model.load_checkpoint(config, checkpoint_dir=str(path), eval=True)
        fix_xtts_cache(model)
    else:
        model.load_checkpoint(config, checkpoint_path=str(checkpoint_of(path)), eval=True)
    return config, model.to(device)


@dataclass
class _Voice:
    name: str
    model_dir: Path
    config: object
    model: object
    speaker: str | None  # speaker name of a multi-speaker model
    speaker_index: int | None
    clips: tuple[str, ...]  # XTTS reference clips
    sha256: str
    length_scale: float = 1.0  # the model's own pace; a request's rate multiplies it
    noise_scale: float = 0.667  # the model's own VITS noise (prior, durations)
    noise_scale_dp: float = 1.0
    latents: tuple | None = None  # XTTS conditioning from the clips, computed on first use

    @property
    def is_xtts(self) -> bool:
        return self.config.model.lower() == "xtts"

    @property
    def sample_rate(self) -> int:
        audio = self.config.audio
        return int(audio.get("output_sample_rate") or audio["sample_rate"])

    @property
    def label(self) -> str:
        """Who speaks: the model's name and the speaker (or the clips) however the voice was named."""
        who = self.speaker if self.speaker is not None else "+".join(Path(c).stem for c in self.clips)
        return f"{self.model_dir.name}#{who}" if who else self.model_dir.name


def speakers_of(model) -> list[str]:
    """Speaker names of a multi-speaker model, in index order (empty for a single speaker)."""
    manager = getattr(model, "speaker_manager", None)
    if manager is None or not getattr(manager, "name_to_id", None):
        return []
    return [n for n, _ in sorted(manager.name_to_id.items(), key=lambda kv: kv[1])]


class CoquiConfig(Section):
    """``synthesis.coqui``: coqui-tts models (VITS family, XTTS)."""

    device: Literal["cpu", "cuda"] = "cpu"
    language: str = "en"  # XTTS language; language id of a multilingual VITS
    noise_scale: float | None = Field(None, ge=0.0)  # VITS sampling noise; None: the model's own
    noise_scale_dp: float | None = Field(None, ge=0.0)  # VITS duration noise; None: the model's own
    # VITS sentences of similar length synthesised as padded batches of up to synthesis.batch_size
    # (off: slower on CPU, docs/benchmarks.md; not yet measured on a GPU)
    batched: bool = False
    # XTTS sampling; None: the model's config.json
    temperature: float | None = Field(None, gt=0.0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    length_penalty: float | None = None


@tts_backends.register("coqui", config=CoquiConfig)
class CoquiBackend(TTSBackend):
    """coqui-tts models on CPU or CUDA, one loaded model per directory shared by its voices."""

    name = "coqui"

    def __init__(self, voices: list[str], config: CoquiConfig | None = None, batch_size: int = 8,
                 threads: int = 1):
        super().__init__(voices)
        self.config = config or CoquiConfig()
        self.batch_size = batch_size if self.config.batched else 1
        self.threads = threads
        self.device = self.config.device
        self._voices: dict[str, _Voice] = {}

    @classmethod
    def from_config(cls, voices: list[str], synthesis: SynthesisConfig) -> CoquiBackend:
        return cls(voices, synthesis.section("coqui"), synthesis.batch_size)

    @property
    def uses_gpu(self) -> bool:
        return self.config.device == "cuda"

    def setup(self) -> None:
        torch = require("torch", "coqui TTS", "coqui")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("synthesis.coqui.device is 'cuda' but torch sees no CUDA device")
        if self.device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        for name in dict.fromkeys(self.voices):
            self._voices[name] = self._load(name)

    def _load(self, name: str) -> _Voice:
        base, _, who = name.partition("#")
        model_dir = _resolve_model(base)
        config, model = load_model(str(model_dir.resolve()), self.device)
        clips = tuple(c for c in who.split(",") if c) if who.lower().endswith(_AUDIO_SUFFIXES) else ()
        speaker, index = None, None
        if config.model.lower() == "xtts":
            if not clips:
                raise ConfigError(f"coqui voice '{name}': an XTTS model needs reference clips (DIR#clip.wav)")
            missing = [c for c in clips if not os.path.exists(c)]
            if missing:
                raise ConfigError(f"coqui voice '{name}': reference clip not found: {missing[0]}")
        else:
            names = speakers_of(model)
            if who and not names:
                raise ConfigError(f"coqui voice '{name}': the model at {model_dir} has a single speaker")
            if names:
                if not who:
                    who = names[0]
                if who.isdigit() and who not in names:
                    if int(who) >= len(names):
                        raise ConfigError(f"coqui voice '{name}': speaker index {who} of {len(names)}")
                    who = names[int(who)]
                if who not in names:
                    raise ConfigError(f"coqui voice '{name}': no speaker '{who}' (the model has {len(names)}: "
                                      f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
                speaker, index = who, model.speaker_manager.name_to_id[who]
        args = getattr(config, "model_args", None)
        return _Voice(name, model_dir, config, model, speaker, index, clips, sha256_file(checkpoint_of(model_dir)),
                      float(getattr(args, "length_scale", 1.0) or 1.0),
                      float(getattr(args, "inference_noise_scale", 0.667)),
                      float(getattr(args, "inference_noise_scale_dp", 1.0)))

    def sample_rate(self, voice: str) -> int:
        return self._voices[voice].sample_rate

    def speaker_of(self, voice: str) -> str:
        return self._voices[voice].label

    def speakers(self, voice: str) -> list[str]:
        v = self._voices[voice]
        return [] if v.is_xtts else speakers_of(v.model)

    def languages(self, voice: str) -> list[str]:
        """XTTS and multilingual VITS speak ``synthesis.coqui.language``; a one-language model the
        ``phoneme_language`` of its config.json ("en-us" → "en")."""
        config = json.loads((_resolve_model(voice.partition("#")[0]) / "config.json").read_text())
        args = config.get("model_args") or {}
        multilingual = config.get("model", "").lower() == "xtts" or args.get("use_language_embedding") \
            or config.get("languages")
        code = self.config.language if multilingual else (config.get("phoneme_language") or self.config.language)
        return [code.replace("_", "-").split("-")[0].lower()]

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        out = {"coqui-tts": version("coqui-tts")}
        for name, v in self._voices.items():
            out[f"voice:{name}"] = f"sha256:{v.sha256}"
        return out

    # --- synthesis ---

    def synthesize(self, request: VoiceRequest) -> Speech:
        return self.synthesize_batch([request])[0]

    def synthesize_batch(self, requests: list[VoiceRequest]) -> list[Speech]:
        """Every sentence of the requests; VITS sentences of one model in padded batches of similar length."""
        said: dict[tuple[int, int], tuple[np.ndarray, list[tuple[str, int, int]]]] = {}
        vits: dict[int, list[tuple[int, int]]] = {}
        for ri, request in enumerate(requests):
            v = self._voices[request.voice]
            for si, sentence in enumerate(request.sentences):
                if v.is_xtts:
                    said[ri, si] = self._xtts(v, sentence, request.rate, _sentence_seed(request.seed, si)), []
                else:
                    vits.setdefault(id(v.model), []).append((ri, si))
        for keys in vits.values():
            ids = {k: self._voices[requests[k[0]].voice].model.tokenizer.text_to_ids(requests[k[0]].sentences[k[1]])
                   for k in keys}
            for k in keys:
                if not ids[k]:
                    said[k] = np.zeros(0, dtype=np.float32), []
            keys = sorted((k for k in keys if ids[k]), key=lambda k: len(ids[k]))
            if not keys:
                continue
            size = self.batch_size if self._batchable(self._voices[requests[keys[0][0]].voice]) else 1
            for at in range(0, len(keys), size):
                chunk = keys[at:at + size]
                items = [(self._voices[requests[ri].voice], ids[ri, si], requests[ri].rate,
                          _sentence_seed(requests[ri].seed, si)) for ri, si in chunk]
                said.update(zip(chunk, self._vits(items)))
        return [self._speech(request, [said[ri, si] for si in range(len(request.sentences))])
                for ri, request in enumerate(requests)]

    def _speech(self, request: VoiceRequest, said: list[tuple[np.ndarray, list[tuple[str, int, int]]]]) -> Speech:
        """One request's sentences joined by pauses, with their symbol, word and sentence spans."""
        v = self._voices[request.voice]
        sr = v.sample_rate
        pause = np.zeros(int(request.sentence_pause_s * sr), dtype=np.float32)
        pieces: list[np.ndarray] = []
        words: list[Word] = []
        sentences: list[Word] = []
        phones: list[tuple[str, float, float]] = []
        t = 0
        for si, (sentence, (audio, symbols)) in enumerate(zip(request.sentences, said)):
            if si and len(pause):
                pieces.append(pause)
                t += len(pause)
            phones.extend((s, (t + a) / sr, (t + b) / sr) for s, a, b in symbols)
            if symbols:
                words.extend(symbol_word_spans(sentence, symbols, v.config.characters.punctuations, t, sr))
            sentences.append(Word(sentence, t / sr, (t + len(audio)) / sr))
            pieces.append(audio)
            t += len(audio)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Speech(audio=peak_normalize(audio), sample_rate=sr, voice=request.voice, rate=request.rate, words=words,
                      sentences=sentences, phonemes=phones, speaker=v.label)

    @staticmethod
    def _batchable(v: _Voice) -> bool:
        """Whether padded batches give the model's single-sentence samples: VITS, unless it
        interpolates its latents across frames."""
        model = v.model
        return (hasattr(model, "flow") and hasattr(model, "waveform_decoder")
                and not getattr(model.args, "encoder_sample_rate", None))

    def _vits(self, items: list[tuple[_Voice, list[int], float, int]]) -> list[tuple[np.ndarray, list]]:
        """Audio and symbol spans (blanks and padding dropped) of sentences of one VITS model:
        (voice, token ids, rate, seed) each, run as one padded batch."""
        import torch

        model = items[0][0].model
        n = [len(ids) for _, ids, _, _ in items]
        x = torch.zeros((len(items), max(n)), dtype=torch.long)
        for b, (_, ids, _, _) in enumerate(items):
            x[b, :len(ids)] = torch.tensor(ids)
        aux = {"x_lengths": torch.tensor(n, device=self.device)}
        if items[0][0].speaker_index is not None:
            if getattr(model.args, "use_d_vector_file", False):
                emb = [np.asarray(model.speaker_manager.get_mean_embedding(v.speaker)) for v, _, _, _ in items]
                aux["d_vectors"] = torch.tensor(np.stack(emb), dtype=torch.float32, device=self.device)
            else:
                aux["speaker_ids"] = torch.tensor([v.speaker_index for v, _, _, _ in items], device=self.device)
        languages = getattr(getattr(model, "language_manager", None), "name_to_id", None)
        if languages:
            aux["language_ids"] = torch.tensor([languages.get(self.config.language, 0)] * len(items),
                                               device=self.device)
        v0 = items[0][0]
        model.length_scale = torch.tensor([v.length_scale * rate for v, _, rate, _ in items],
                                          device=self.device)[:, None, None]
        model.inference_noise_scale = v0.noise_scale if self.config.noise_scale is None else self.config.noise_scale
        model.inference_noise_scale_dp = (v0.noise_scale_dp if self.config.noise_scale_dp is None
                                          else self.config.noise_scale_dp)
        seeds = [seed for _, _, _, seed in items]
        masked = masked_decoder(model) if len(items) > 1 else contextlib.nullcontext()
        with torch.random.fork_rng(devices=[] if self.device == "cpu" else None), torch.inference_mode():
            torch.manual_seed(seeds[0])  # noise drawn elsewhere than VITS's own draws (other VITS-like models)
            with seeded_noise(seeds), masked:
                out = model.inference(x.to(self.device), aux_input=aux)
        waves = out["model_outputs"][:, 0].float().cpu().numpy()
        durations = out["durations"][:, 0].long().cpu().numpy()
        hop = waves.shape[-1] // max(int(durations.sum(axis=1).max()), 1)
        chars = model.tokenizer.characters
        skip = {chars.blank, chars.pad, chars.bos, chars.eos} - {None}
        said = []
        for b, (_, ids, _, _) in enumerate(items):
            samples = durations[b, :len(ids)] * hop
            audio = fit_length(waves[b], int(samples.sum()))
            symbols: list[tuple[str, int, int]] = []
            start = 0
            for i, k in zip(ids, samples.tolist()):
                symbol = chars.id_to_char(i)
                if symbol not in skip:
                    symbols.append((symbol, start, start + int(k)))
                start += int(k)
            said.append((audio, symbols))
        return said

    def _xtts(self, v: _Voice, sentence: str, rate: float, seed: int) -> np.ndarray:
        """Speech of one sentence in the voice of the reference clips (sampling seeded by ``seed``)."""
        import torch

        if v.latents is None:
            v.latents = v.model.get_conditioning_latents(audio_path=list(v.clips))
        c = self.config
        sampling = {k: getattr(c, k) if getattr(c, k) is not None else getattr(v.config, k)
                    for k in ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty")}
        with torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
            torch.manual_seed(seed)
            out = v.model.inference(sentence, c.language, *v.latents, speed=1.0 / rate, **sampling)
        return np.asarray(out["wav"], dtype=np.float32).reshape(-1)


def _sentence_seed(seed: int, index: int) -> int:
    """The sampling seed of a request's sentence ``index``."""
    return (seed * 1_000_003 + index) % (1 << 63)
