"""Coqui TTS backend (``coqui-tts``): VITS-family models, single- or multi-speaker, and XTTS
voice cloning from reference clips.

Voices are named by a model directory (``config.json`` and a ``.pth`` checkpoint, as coqui
writes and downloads them) or, online, by a coqui model name (``tts_models/en/vctk/vits``):

* ``DIR`` — the model's only (or default) speaker;
* ``DIR#SPEAKER`` — a speaker of a multi-speaker model, by name (``p225``) or index (``3``);
* ``DIR#CLIP.wav[,CLIP2.wav]`` — an XTTS model speaking in the voice of the reference clips.

Models load through coqui's own path (``load_config`` → ``setup_model`` → ``load_checkpoint``).
VITS gives per-symbol durations (``durations`` of its inference output, in frames of
``hop_length`` samples), which become phoneme (or character) and word spans as with Piper.
The sampling noise is drawn from torch's generator seeded per request, so the same text, voice,
rate and seed give the same samples. XTTS gives no durations: its speech has sentence spans only.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoforge.backends.tts.base import (
    TTSBackend,
    VoiceRequest,
    fit_length,
    peak_normalize,
    sentence_words,
    tts_backends,
)
from echoforge.errors import ConfigError, require
from echoforge.io.files import sha256_file
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


@tts_backends.register("coqui")
class CoquiBackend(TTSBackend):
    """coqui-tts models on CPU or CUDA, one loaded model per directory shared by its voices."""

    name = "coqui"

    def __init__(self, voices: list[str], threads: int = 1, noise_scale: float | None = None,
                 noise_w: float | None = None, device: str = "cpu", language: str = "en"):
        super().__init__(voices)
        self.threads = threads
        self.noise_scale = noise_scale
        self.noise_w = noise_w
        self.device = device
        self.language = language
        self._voices: dict[str, _Voice] = {}

    def setup(self) -> None:
        torch = require("torch", "coqui TTS", "coqui")
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
        return _Voice(name, model_dir, config, model, speaker, index, clips, sha256_file(checkpoint_of(model_dir)),
                      float(getattr(getattr(config, "model_args", None), "length_scale", 1.0) or 1.0))

    def sample_rate(self, voice: str) -> int:
        return self._voices[voice].sample_rate

    def speaker_of(self, voice: str) -> str:
        return self._voices[voice].label

    def speakers(self, voice: str) -> list[str]:
        v = self._voices[voice]
        return [] if v.is_xtts else speakers_of(v.model)

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        out = {"coqui-tts": version("coqui-tts")}
        for name, v in self._voices.items():
            out[f"voice:{name}"] = f"sha256:{v.sha256}"
        return out

    # --- synthesis ---

    def synthesize(self, request: VoiceRequest) -> Speech:
        import torch

        v = self._voices[request.voice]
        sr = v.sample_rate
        pause = np.zeros(int(request.sentence_pause_s * sr), dtype=np.float32)
        pieces: list[np.ndarray] = []
        words: list[Word] = []
        sentences: list[Word] = []
        phones: list[tuple[str, float, float]] = []
        t = 0
        for si, sentence in enumerate(request.sentences):
            if si and len(pause):
                pieces.append(pause)
                t += len(pause)
            with torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
                torch.manual_seed((request.seed * 1_000_003 + si) % (1 << 63))
                if v.is_xtts:
                    audio, symbols = self._xtts(v, sentence, request.rate), []
                else:
                    audio, symbols = self._vits(v, sentence, request.rate)
            phones.extend((s, (t + a) / sr, (t + b) / sr) for s, a, b in symbols)
            if symbols:
                words.extend(_word_spans(sentence, symbols, v.config.characters.punctuations, t, sr))
            sentences.append(Word(sentence, t / sr, (t + len(audio)) / sr))
            pieces.append(audio)
            t += len(audio)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Speech(audio=peak_normalize(audio), sample_rate=sr, voice=request.voice, rate=request.rate, words=words,
                      sentences=sentences, phonemes=phones, speaker=v.label)

    def _vits(self, v: _Voice, sentence: str, rate: float) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """Audio of one sentence and its symbols with sample spans (blanks and padding dropped)."""
        import torch

        model = v.model
        ids = model.tokenizer.text_to_ids(sentence)
        if not ids:
            return np.zeros(0, dtype=np.float32), []
        aux = {"x_lengths": torch.tensor([len(ids)], device=self.device)}
        if v.speaker_index is not None:
            if getattr(model.args, "use_d_vector_file", False):
                emb = model.speaker_manager.get_mean_embedding(v.speaker)
                aux["d_vectors"] = torch.tensor(np.asarray(emb)[None], dtype=torch.float32, device=self.device)
            else:
                aux["speaker_ids"] = torch.tensor([v.speaker_index], device=self.device)
        languages = getattr(getattr(model, "language_manager", None), "name_to_id", None)
        if languages:
            aux["language_ids"] = torch.tensor([languages.get(self.language, 0)], device=self.device)
        model.length_scale = v.length_scale * rate
        if self.noise_scale is not None:
            model.inference_noise_scale = self.noise_scale
        if self.noise_w is not None:
            model.inference_noise_scale_dp = self.noise_w
        out = model.inference(torch.tensor([ids], device=self.device), aux_input=aux)
        audio = out["model_outputs"].reshape(-1).float().cpu().numpy()
        frames = out["durations"].reshape(-1).long().cpu().numpy()
        hop = len(audio) // max(int(frames.sum()), 1)
        samples = frames * hop
        audio = fit_length(audio, int(samples.sum()))
        chars = model.tokenizer.characters
        skip = {chars.blank, chars.pad, chars.bos, chars.eos} - {None}
        symbols: list[tuple[str, int, int]] = []
        start = 0
        for i, n in zip(ids, samples.tolist()):
            symbol = chars.id_to_char(i)
            if symbol not in skip:
                symbols.append((symbol, start, start + int(n)))
            start += int(n)
        return audio, symbols

    def _xtts(self, v: _Voice, sentence: str, rate: float) -> np.ndarray:
        if v.latents is None:
            v.latents = v.model.get_conditioning_latents(audio_path=list(v.clips))
        out = v.model.inference(sentence, self.language, *v.latents, speed=1.0 / rate)
        return np.asarray(out["wav"], dtype=np.float32).reshape(-1)


def _word_spans(sentence: str, symbols: list[tuple[str, int, int]], punctuations: str, offset: int,
                sr: int) -> list[Word]:
    """Word spans from symbol spans: words are runs of symbols between spaces and punctuation.

    When the model's text cleaner split or joined words differently from the sentence, each
    word gets a share of the spoken stretch in proportion to its length.
    """
    breaks = (set(punctuations or "") | {" "}) - {"'"}
    runs: list[list[int]] = []
    open_run = False
    for symbol, a, b in symbols:
        if symbol in breaks or symbol.isspace():
            open_run = False
            continue
        if open_run:
            runs[-1][1] = b
        else:
            runs.append([a, b])
            open_run = True
    tokens = sentence_words(sentence)
    if len(runs) != len(tokens):
        spoken = [s for s in symbols if not (s[0] in breaks or s[0].isspace())]
        lo, hi = (spoken[0][1], spoken[-1][2]) if spoken else (0, 0)
        total = sum(len(w) for w in tokens) or 1
        runs, at = [], lo
        for w in tokens:
            end = at + (hi - lo) * len(w) // total
            runs.append([at, end])
            at = end
    return [Word(w, (offset + a) / sr, (offset + b) / sr) for w, (a, b) in zip(tokens, runs)]
