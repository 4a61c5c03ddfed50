"""Build configuration: YAML validated into pydantic models, errors that name the field."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from echoforge.errors import ConfigError
from echoforge.registry import Registry, tts_backends, unit_tokenizers


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(Section):
    """Where to find a turn in an input layout the built-in formats do not cover.

    Paths are dotted (``meta.question``). Either ``messages`` (a list of role/content
    dicts), ``question``/``answer`` fields, or ``instances`` (one instruction with a nested
    list of input/output pairs) must be given.
    """

    id: str | None = None
    messages: str | None = None
    role: str = "role"
    content: str = "content"
    user_roles: list[str] = ["user", "human"]
    assistant_roles: list[str] = ["assistant", "gpt", "bot"]
    question: str | None = None
    context: str | None = None
    answer: str | None = None
    instruction: str | None = None
    instances: str | None = None
    instance_input: str = "input"
    instance_output: str = "output"

    @model_validator(mode="after")
    def _one_layout(self) -> FieldMapping:
        if not (self.messages or (self.question and self.answer) or (self.instruction and self.instances)):
            raise ValueError(
                "give 'messages', or 'question' and 'answer', or 'instruction' and 'instances'"
            )
        return self


class IngestConfig(Section):
    format: Literal["auto", "sharegpt", "openai", "alpaca", "qa", "mapping"] = "auto"
    mapping: FieldMapping | None = None
    max_history_turns: int = Field(8, ge=0)
    split: str = "train"  # split of a `datasets` input
    system_prompts: Literal["drop", "history"] = "drop"
    # A JSONL line or JSON array item longer than this is a reject (never read whole).
    max_row_bytes: int = Field(8 << 20, ge=1)

    @model_validator(mode="after")
    def _mapping_given(self) -> IngestConfig:
        if self.format == "mapping" and self.mapping is None:
            raise ValueError("format 'mapping' needs a 'mapping' section")
        return self


Policy = Literal["drop", "reject"]


class SpeakableConfig(Section):
    code: Policy = "drop"
    tables: Policy = "drop"
    urls: Policy = "drop"
    images: Policy = "drop"
    normalizer: Literal["nemo", "none"] = "nemo"
    nemo_cache_dir: str | None = None  # default: ~/.cache/echoforge/nemo
    # Length budgets: unset, the character caps follow the gate's limits (question_chars and
    # answer_chars below); set, they are checked against them when the config loads.
    max_question_chars: int | None = Field(None, ge=1)
    max_answer_sentences: int = Field(12, ge=1)
    max_answer_chars: int | None = Field(None, ge=1)
    chars_per_second: float = Field(15.0, gt=0.0)  # spoken characters per second of speech (docs/speakable.md)
    units_per_char: float = Field(2.2, gt=0.0)  # deduplicated answer units per spoken character (docs/speakable.md)
    overflow: Literal["truncate", "reject"] = "truncate"
    language_check: bool = True  # identify each side's and sentence's language; refuse what the voices do not speak
    min_letters: int = Field(2, ge=1)  # fewer speakable letters than this: reject
    # Said instead of a dropped URL ("the link in the text"); unset: the sentence that needs it goes.
    url_placeholder: str | None = None
    # Said where a code block or table was dropped ("See the {what} in the text."); unset: nothing.
    block_placeholder: str | None = None

    def question_chars(self, config: BuildConfig) -> int:
        """Spoken characters a question may have: ``gate.max_question_audio_s`` of the slowest
        user voice (``rate_jitter``), or ``max_question_chars`` when set (or no audio limit: 600)."""
        seconds = config.gate.max_question_audio_s
        if self.max_question_chars is not None or seconds is None:
            return self.max_question_chars or 600
        return int(seconds * self.chars_per_second / (1 + config.synthesis.rate_jitter))

    def answer_chars(self, config: BuildConfig) -> int:
        """Spoken characters an answer is cut to (at a sentence end): ``gate.max_answer_dedup_units``
        of the slowest assistant voice, within ``gate.max_duration_s``; or ``max_answer_chars``."""
        if self.max_answer_chars is not None:
            return self.max_answer_chars
        slow = 1 + config.synthesis.assistant_rate_jitter
        caps = [config.gate.max_duration_s * self.chars_per_second / slow]
        if config.gate.max_answer_dedup_units is not None:
            caps.append(config.gate.max_answer_dedup_units / (self.units_per_char * slow))
        return int(min(caps))


class SectionError(ValueError):
    """A mistake inside a backend's section: where (below the section) and what."""

    def __init__(self, loc: tuple[Any, ...], msg: str):
        super().__init__(msg)
        self.loc, self.msg = loc, msg


class BackendSections(Section):
    """A section whose sub-sections belong to the registered backends of one kind: each backend
    brings its config model (``registry.register(name, config=Model)``), validated here; a
    backend given no sub-section gets its defaults. ``section(name)`` returns one."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _registry: ClassVar[Registry[Any]]
    _path: ClassVar[str]
    _choice: ClassVar[str]  # the field that names the backend

    @model_validator(mode="after")
    def _backend_sections(self) -> BackendSections:
        chosen = getattr(self, self._choice)
        if chosen not in self._registry.names():
            raise SectionError((self._choice,), f"unknown {self._registry.kind} '{chosen}'"
                               + _closest(chosen, self._registry.names())
                               + f": choose one of {', '.join(self._registry.names())}")
        sections = self._registry.sections()
        given = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        for key in given:
            if key not in sections:
                where = f"{self._path}.{key}"
                if where in MOVED:
                    raise SectionError((key,), f"unknown field: moved to {MOVED[where]}")
                raise SectionError((key,), "unknown field" + _closest(key, [*type(self).model_fields, *sections]))
        for name, model in sections.items():
            raw = given.get(name)
            if isinstance(raw, model):
                continue
            try:
                given[name] = model.model_validate({} if raw is None else raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = "unknown field" + _closest(str(err["loc"][-1]), list(model.model_fields))
                raise SectionError((name, *err["loc"]), msg) from None
        return self

    def section(self, name: str) -> Any:
        """The validated sub-section of backend ``name``."""
        return self.__pydantic_extra__[name]


#: The user voices of the "default" preset: 64 seeded Kokoro voices (the assistant keeps one voice),
#: led by the four packs whose voices scored best on DNSMOS (jf_tebukuro-led ones scored 0.3-0.4
#: below the others; it still mixes in); docs/benchmarks.md, "Many voices".
DEFAULT_USER_VOICES = ["kokoro:blend(n=64, seed=0, leads=jf_alpha|jf_nezumi|jm_kumo|jf_gongitsune)"]


def preset_voices(preset: str, backend: str) -> tuple[str, list[str]]:
    """(assistant voice, user voices) of a ``synthesis.voices`` preset: "default" gives the users
    Kokoro mixtures and the assistant ``joe`` (Kokoro's ``jf_alpha`` when ``backend`` is kokoro);
    "fast" is ``joe`` on both sides. ``joe`` names the bundled Piper voice, or a voice of that name
    of the default backend (a backend built on Piper's)."""
    if preset == "fast":
        return "joe", ["joe"]
    return ("jf_alpha" if backend == "kokoro" else "joe"), list(DEFAULT_USER_VOICES)


class SynthesisConfig(BackendSections):
    """``synthesis``: voices and their policy; ``synthesis.<backend>`` sections come from the TTS
    backends' own config models (``piper``, ``coqui``, …)."""

    _registry = tts_backends
    _path = "synthesis"
    _choice = "backend"

    backend: str = "piper"
    # Unset assistant_voice / user_voices come from this preset; unset: ECHOFORGE_VOICES or "default"
    voices: Literal["default", "fast"] = "default"
    assistant_voice: str = "joe"
    user_voices: list[str] = DEFAULT_USER_VOICES
    rate_jitter: float = Field(0.08, ge=0.0, lt=0.5)
    assistant_rate_jitter: float = Field(0.03, ge=0.0, lt=0.5)
    seed: int = 0
    sentence_pause_s: float = Field(0.25, ge=0.0, le=2.0)
    keep_answer_audio: bool = True
    batch_size: int = Field(8, ge=1)
    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """Unset ``voices``: ``ECHOFORGE_VOICES`` or "default"; unset voices: the preset's."""
        if not isinstance(data, dict):
            return data
        preset = data.get("voices") or os.environ.get("ECHOFORGE_VOICES") or "default"
        assistant, users = preset_voices(preset, data.get("backend", "piper"))
        return {"assistant_voice": assistant, "user_voices": users, **data, "voices": preset}

    @model_validator(mode="after")
    def _voices(self) -> SynthesisConfig:
        if not self.user_voices:
            raise ValueError("user_voices must name at least one voice")
        return self


class UnitsConfig(BackendSections):
    """``units``: the tokenizer; ``units.<section>`` from the tokenizers' own config models
    (``hubert``, ``encodec``, ``mimi``)."""

    _registry = unit_tokenizers
    _path = "units"
    _choice = "tokenizer"

    tokenizer: str = "whisper-kmeans"
    codebook: str | None = None  # path to a codebook .npy; default: the packaged one
    model: str | None = None  # encoder / codec model path; default: the tokenizer's own
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    batch_size: int = Field(8, ge=1)
    unit_lm: str | None = None  # sentencepiece model over deduplicated units


class WhisperASRConfig(Section):
    """``gate.whisper``: how the round-trip ASR (faster-whisper, CTranslate2) decodes."""

    beam_size: int = Field(1, ge=1)  # 1: greedy, all a WER needs
    # True: faster-whisper's timestamp-driven transcribe (seeks across 30 s windows; about five
    # times the CPU time). False: one encoder pass over the speech alone, shared with the units.
    timestamps: bool = False
    device: Literal["cpu", "cuda"] = "cpu"
    compute_type: str | None = None  # CTranslate2 compute type; None: int8 on CPU, float16 on a GPU


class GateConfig(Section):
    asr: Literal["both", "question", "answer", "none"] = "both"
    asr_model: str | None = None  # CTranslate2 Whisper model dir; default: bundled tiny.en
    max_question_wer: float | None = Field(0.5, ge=0.0)
    max_answer_wer: float | None = Field(0.4, ge=0.0)
    # A WER limit fires only with at least this many wrong words (or all words wrong): one
    # misheard word in a three-word question says more about tiny ASR than about the audio.
    min_word_errors: int = Field(3, ge=1)
    min_duration_s: float = Field(0.3, ge=0.0)
    max_duration_s: float = Field(90.0, gt=0.0)
    min_chars_per_second: float = Field(4.0, ge=0.0)
    max_chars_per_second: float = Field(30.0, gt=0.0)
    max_leading_silence_s: float = Field(1.0, ge=0.0)
    max_trailing_silence_s: float = Field(1.5, ge=0.0)
    max_clipping_ratio: float = Field(0.01, ge=0.0, le=1.0)
    batch_size: int = Field(8, ge=1)
    max_question_audio_s: float | None = Field(30.0, gt=0.0)  # Whisper encoder window of speech LLMs
    max_answer_dedup_units: int | None = Field(2048, ge=1)  # unit sequence cap of echo training
    # ASR per side ("tiny.en", "whisper-base" or a CTranslate2 model dir); unset: asr_model.
    question_asr_model: str | None = None
    answer_asr_model: str | None = None
    # Sides whose normalised text has fewer words than this are judged by character error rate
    # ("cer"), by the ASR's own confidence ("confidence") or by phoneme error rate ("phonemes",
    # hama's phoneme recogniser against its G2P of the spoken text) instead of WER.
    short_words: int = Field(4, ge=0)
    short_judge: Literal["cer", "confidence", "phonemes"] = "cer"
    max_short_cer: float = Field(0.5, ge=0.0)
    min_short_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_short_per: float = Field(0.5, ge=0.0)
    phonemes: bool = False  # phoneme error rate of both sides as figures (needs the 'phonemes' extra)
    whisper: WhisperASRConfig = WhisperASRConfig()
    # A side that fails by what the ASR heard is heard again by this ASR ("whisper-base", "tiny.en"
    # or a CTranslate2 model dir; a beam of 5) and kept if it passes there; "none": rejected at once.
    second_judge: str = "whisper-base"
    # Share of the gate's decisions (kept and rejected turns, chosen by a hash of the turn id)
    # that the second judge re-hears in full, as the gate's own audit (docs/gate.md); 0: none.
    audit_rate: float = Field(0.02, ge=0.0, le=1.0)


class ListenConfig(Section):
    """``listen``: how each kept turn sounds (DNSMOS) and who speaks in it (speaker embeddings)."""

    dnsmos: bool = True  # P.835 SIG/BAK/OVRL and P.808 of both sides (models from the speechmos wheel)
    # 9.01 s windows this far apart (the DNSMOS reference: 1 s); unset: the fewest that cover the clip
    dnsmos_hop_s: float | None = Field(None, gt=0.0, le=9.01)
    # Resemblyzer embeddings: the question's stored, the answer's compared with the assistant
    # voice's reference (a fixed text it speaks); needs the 'speaker' extra (torch).
    speaker: bool = False
    reference_text: str = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
                           "How much wood would a woodchuck chuck if a woodchuck could chuck wood? "
                           "We will meet again at seven o'clock on Thursday morning.")
    # Limits (unset: measured, not enforced); a turn below one is rejected as listen.<figure>_low.
    min_question_ovrl: float | None = Field(None, ge=1.0, le=5.0)
    min_answer_ovrl: float | None = Field(None, ge=1.0, le=5.0)
    min_answer_speaker_similarity: float | None = Field(None, ge=-1.0, le=1.0)
    device: Literal["cpu", "cuda"] = "cpu"
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _needs_speaker(self) -> ListenConfig:
        if self.min_answer_speaker_similarity is not None and not self.speaker:
            raise ValueError("min_answer_speaker_similarity needs speaker: true")
        if (self.min_question_ovrl or self.min_answer_ovrl) and not self.dnsmos:
            raise ValueError("an OVRL limit needs dnsmos: true")
        return self


class SegmentsConfig(Section):
    """Echo-training segments: answer pieces sized in the LLM's own text tokens."""

    boundary: Literal["sentence", "clause"] = "sentence"
    min_tokens: int = Field(8, ge=1)  # merge pieces until a segment has at least this many tokens
    max_tokens: int = Field(64, ge=1)  # never merge past this; longer pieces are cut between words
    tokenizer: str | None = None  # tokenizer.json path or Hub id; default: the bundled Whisper tokenizer

    @model_validator(mode="after")
    def _bounds(self) -> SegmentsConfig:
        if self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens must not exceed max_tokens")
        return self


class CTCAlignerConfig(Section):
    """``align.ctc``: the CTC forced aligner (``echoforge/backends/aligners``)."""

    backend: Literal["hama", "wav2vec2"] = "hama"
    # wav2vec2: a Wav2Vec2ForCTC directory (or Hub id when online)
    model: str | None = Field(None, validate_default=True)

    @field_validator("model")
    @classmethod
    def _model(cls, model: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if backend == "wav2vec2" and not model:
            raise ValueError("the wav2vec2 aligner needs a Wav2Vec2ForCTC checkpoint (a directory or Hub id)")
        if backend == "hama" and model:
            raise ValueError("the hama aligner ships its own model; leave it unset")
        return model


class AlignConfig(Section):
    """Where the answer's word timings come from, and an optional check of them."""

    # auto: the synthesiser's durations when the voice gives them, the CTC aligner when it gives none
    aligner: Literal["auto", "synthesiser", "ctc"] = "auto"
    check: bool = False  # also run the CTC aligner and record its agreement with the synthesiser
    ctc: CTCAlignerConfig = CTCAlignerConfig()
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # of the CTC aligner (wav2vec2; hama runs on CPU)
    batch_size: int = Field(8, ge=1)


class OutputConfig(Section):
    format: Literal["parquet", "arrow"] = "parquet"
    validation_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    # Shards are planned before any audio exists: a shard of the train split groups
    # shard_size_mb / (row_size_kb x work_unit_rows) work units (validation and rejects
    # proportionally more), so the same plan gives the same shards on every engine and resume.
    shard_size_mb: float = Field(500.0, gt=0.0)
    row_size_kb: float | None = Field(None, gt=0.0)  # expected output per input row; None: measured default
    row_group_rows: int = Field(100, ge=1)  # Parquet row group size (streaming reads)


class StorageConfig(Section):
    """fsspec options per protocol, e.g. ``s3: {endpoint_url: ..., key: ..., secret: ...}``.

    Credentials (``key``, ``secret``, ``token``... at any depth) are held as ``SecretStr``:
    never printed, never saved with the output, never pickled into the job (workers read them
    again from the config file, or from the usual environment variables, which are better).
    """

    s3: dict[str, Any] = {}
    gs: dict[str, Any] = {}
    hf: dict[str, Any] = {}
    _source: str | None = PrivateAttr(None)  # the config file they were read from

    @field_validator("s3", "gs", "hf")
    @classmethod
    def _hide_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        from echoforge.storage import SECRET_KEYS

        def hide(v: Any, key: str = "") -> Any:
            if isinstance(v, dict):
                return {k: hide(x, k) for k, x in v.items()}
            if key.lower() in SECRET_KEYS and v is not None and not isinstance(v, SecretStr):
                return SecretStr(str(v))
            return v

        return hide(value)

    def options(self):
        """The options for :mod:`echoforge.storage` (a ``StorageOptions``: secrets stay hidden)."""
        from echoforge.storage import StorageOptions

        def reveal(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: reveal(x) for k, x in v.items()}
            return v.get_secret_value() if isinstance(v, SecretStr) else v

        return StorageOptions({k: reveal(getattr(self, k)) for k in ("s3", "gs", "hf") if getattr(self, k)},
                              source=self._source)


class RunConfig(Section):
    # Input rows per work unit; None: 16, or fewer for a small input so that it still makes
    # 16 units and no worker idles (the choice depends on the input alone, never on workers).
    work_unit_rows: int | None = Field(None, ge=1)
    workers: int = Field(0, ge=0)  # 0: one per CPU core
    max_failure_ratio: float = Field(0.5, ge=0.0, le=1.0)
    min_turns_for_ratio: int = Field(50, ge=1)
    unit_attempts: int = Field(3, ge=1)  # a work unit that fails this often is quarantined
    lease_ttl_s: float = Field(600.0, gt=0.0)  # a build lease not renewed for this long is stale
    # Storage calls and input reads failing with transient errors (connection, time-out, 5xx,
    # throttling) are retried with backoff for this long; then the build stops (a rerun resumes).
    storage_retry_s: float = Field(120.0, ge=0.0)


class BuildConfig(Section):
    ingest: IngestConfig = IngestConfig()
    speakable: SpeakableConfig = SpeakableConfig()
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    units: UnitsConfig = Field(default_factory=UnitsConfig)
    gate: GateConfig = GateConfig()
    listen: ListenConfig = ListenConfig()
    segments: SegmentsConfig = SegmentsConfig()
    align: AlignConfig = AlignConfig()
    output: OutputConfig = OutputConfig()
    run: RunConfig = RunConfig()
    storage: StorageConfig = StorageConfig()

    @model_validator(mode="after")
    def _length_budgets(self) -> BuildConfig:
        """Character caps that are set must fit the gate's audio and unit limits."""
        sp, gate = self.speakable, self.gate
        derived = sp.model_copy(update={"max_question_chars": None, "max_answer_chars": None})
        if sp.max_question_chars is not None and gate.max_question_audio_s is not None \
                and sp.max_question_chars > derived.question_chars(self):
            raise ValueError(f"speakable.max_question_chars={sp.max_question_chars} is more than "
                             f"gate.max_question_audio_s={gate.max_question_audio_s} s of speech at "
                             f"{sp.chars_per_second} characters per second (at most {derived.question_chars(self)})")
        if sp.max_answer_chars is not None and sp.max_answer_chars > derived.answer_chars(self):
            raise ValueError(f"speakable.max_answer_chars={sp.max_answer_chars} is more than the gate keeps "
                             f"(gate.max_answer_dedup_units={gate.max_answer_dedup_units} at {sp.units_per_char} "
                             f"units per character, gate.max_duration_s={gate.max_duration_s}): at most "
                             f"{derived.answer_chars(self)}")
        return self

    def with_overrides(self, **sections: dict[str, Any]) -> BuildConfig:
        """A copy with some fields of some sections changed, validated again."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        out = parse_config(data)
        out.storage._source = self.storage._source
        return out

    def saved(self) -> dict[str, Any]:
        """The config as saved with the output: everything but the storage options."""
        return self.model_dump(mode="json", exclude={"storage"})

    def row_settings(self) -> dict[str, Any]:
        """The settings that make rows and shards; execution-only ones (batch sizes, workers,
        storage, failure thresholds) are left out, so changing them keeps a resume."""
        data = self.saved()
        data["run"] = {"work_unit_rows": data["run"]["work_unit_rows"]}
        return _without_execution_keys(data)

    def fingerprint(self) -> str:
        """Hash of everything that changes output rows (not how many workers compute them)."""
        return settings_fingerprint(self.row_settings())


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """The fingerprint of row settings (``row_settings()``, as a build's ``build.json`` records them)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# Keys that say how rows are computed, never what they hold, at any depth of the config. A
# device is not one of them: CUDA kernels round differently from CPU ones, and Whisper's default
# compute type follows the device, so rows made on a GPU differ from rows made on a CPU.
EXECUTION_ONLY = ("batch_size",)


def _without_execution_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_execution_keys(v) for k, v in data.items() if k not in EXECUTION_ONLY}
    return data


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


# Keys that moved into a section of their own: an old config gets one line saying where.
MOVED = {
    "synthesis.noise_scale": "synthesis.piper.noise_scale (coqui: synthesis.coqui.noise_scale)",
    "synthesis.noise_w": "synthesis.piper.noise_w (coqui: synthesis.coqui.noise_scale_dp)",
    "synthesis.device": "synthesis.piper.device and synthesis.coqui.device",
}


def _closest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _suggestion(loc: tuple[Any, ...]) -> str:
    """For an unknown key, where it moved (``: moved to x.y``), the closest valid key of its
    section (`` (did you mean 'x'?)``) or ''."""
    if _field_path(loc) in MOVED:
        return f": moved to {MOVED[_field_path(loc)]}"
    model: Any = BuildConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        if field is None:
            return ""
        model = field.annotation
        if isinstance(model, types.UnionType) or getattr(model, "__args__", None):
            model = next((a for a in model.__args__ if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return ""
    return _closest(str(loc[-1]), list(model.model_fields))


def parse_config(data: dict[str, Any] | None) -> BuildConfig:
    """Validate a config mapping; a mistake raises ConfigError naming the field."""
    try:
        return BuildConfig.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, SectionError):  # a backend's own section
            err = {**err, "loc": (*err["loc"], *inner.loc), "msg": inner.msg, "type": "section"}
        where = _field_path(err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field" + _suggestion(err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"config error at {where}: {msg}{more}") from None


def load_config(path: str | Path | None) -> BuildConfig:
    """Read a YAML config file (or the defaults when ``path`` is None)."""
    if path is None:
        return BuildConfig()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {p} is not valid YAML{where}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections")
    config = parse_config(data)
    config.storage._source = str(p.resolve())
    return config
