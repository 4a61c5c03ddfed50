"""``echoforge voices``: the voices a config's synthesis can draw from, loaded as a build loads them."""

from __future__ import annotations

from typing import Any

from echoforge.backends.tts.pool import VoicePool, user_voices
from echoforge.config import BuildConfig


def list_voices(config: BuildConfig) -> list[dict[str, Any]]:
    """One entry per voice of the pool (generators expanded): role, backend, speaker, sample rate,
    the model's other speakers (a Kokoro voices file's voice packs)."""
    c = config.synthesis
    users = user_voices(c)
    pool = VoicePool(c.backend, [c.assistant_voice, *users], c)
    pool.setup()
    out = []
    for voice in pool.voices:
        roles = (["assistant"] if voice == c.assistant_voice else []) + (["user"] if voice in users else [])
        out.append({"voice": voice, "roles": roles, "backend": pool.backend_of(voice),
                    "speaker": pool.speaker_of(voice), "sample_rate": pool.sample_rate(voice),
                    "model_speakers": pool.speakers(voice)})
    return out


def voices_lines(voices: list[dict[str, Any]]) -> list[str]:
    lines = []
    for v in voices:
        more = f", model has {len(v['model_speakers'])} speakers" if v["model_speakers"] else ""
        lines.append(f"{'+'.join(v['roles']):<14} {v['speaker']:<24} {v['backend']:<6} {v['sample_rate']} Hz"
                     f"{more}  ({v['voice']})")
    return lines
