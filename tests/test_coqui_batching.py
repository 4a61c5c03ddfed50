"""Batched coqui VITS synthesis on a tiny random multi-speaker VITS: padded batches of sentences
of different lengths, speakers and rates give the samples and durations of one-at-a-time
synthesis, whatever the batch's make-up, and the synthesize stage batches a whole stage batch."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.coqui import CoquiBackend
from echoforge.backends.tts.coqui import CoquiConfig
from echoforge.config import parse_config
from echoforge.schemas.records import Turn
from echoforge.transforms.synthesize import Synthesize

from tiny_coqui import make_tiny_vits

TEXTS = ["Hi.", "Hello there, old friend.", "It's a fine day for a walk along the river, isn't it?", "Yes.",
         "One, two, three, four, five, six and seven."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_vits(tmp_path_factory.mktemp("batching") / "tiny-vits")


def _requests(model_dir) -> list[VoiceRequest]:
    speakers, rates = ["ada", "bo", "cy", "bo", "ada"], [1.0, 0.9, 1.15, 1.0, 1.05]
    out = [VoiceRequest((t,), f"{model_dir}#{s}", r, 10 + i) for i, (t, s, r) in enumerate(zip(TEXTS, speakers, rates))]
    return out + [VoiceRequest(tuple(TEXTS[:3]), f"{model_dir}#cy", 0.95, 99)]


def _backend(model_dir, batched: bool, batch_size: int = 8) -> CoquiBackend:
    backend = CoquiBackend([r.voice for r in _requests(model_dir)], CoquiConfig(batched=batched), batch_size)
    backend.setup()
    return backend


@contextlib.contextmanager
def _batch_sizes(backend: CoquiBackend, voice: str):
    """The batch size of every forward pass of the voice's text encoder while the block runs."""
    seen: list[int] = []
    encoder = backend._voices[voice].model.text_encoder
    handle = encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        yield seen
    finally:
        handle.remove()


def _assert_same(one, many):
    for a, b in zip(one, many, strict=True):
        assert a.phonemes == b.phonemes and a.words == b.words and a.sentences == b.sentences  # same durations
        assert len(a.audio) == len(b.audio) > 0
        np.testing.assert_allclose(a.audio, b.audio, atol=1e-5, rtol=0)


def test_batched_equals_one_at_a_time(model_dir):
    requests = _requests(model_dir)
    single = _backend(model_dir, batched=False)
    one = [single.synthesize(r) for r in requests]
    batched = _backend(model_dir, batched=True, batch_size=8)
    with _batch_sizes(batched, requests[0].voice) as sizes:
        many = batched.synthesize_batch(requests)
    assert sizes == [8]  # the 8 sentences of 6 requests of one model: one padded batch
    _assert_same(one, many)
    assert len({len(s.audio) for s in many}) == len(many)  # lengths differ: padding was exercised


def test_batch_size_and_order_do_not_change_the_samples(model_dir):
    requests = _requests(model_dir)
    batched = _backend(model_dir, batched=True, batch_size=3)
    with _batch_sizes(batched, requests[0].voice) as sizes:
        first = batched.synthesize_batch(requests)
    assert sizes == [3, 3, 2]
    again = batched.synthesize_batch(requests)
    for a, b in zip(first, again):
        assert np.array_equal(a.audio, b.audio)  # determinism: same requests, same samples
    _assert_same(first, batched.synthesize_batch(requests[::-1])[::-1])
    other_seed = batched.synthesize_batch([VoiceRequest(r.sentences, r.voice, r.rate, r.seed + 1) for r in requests])
    assert all(not (len(a.audio) == len(b.audio) and np.array_equal(a.audio, b.audio))
               for a, b in zip(first, other_seed))


def test_one_at_a_time_runs_single_sentences(model_dir):
    requests = _requests(model_dir)
    single = _backend(model_dir, batched=False, batch_size=8)
    with _batch_sizes(single, requests[0].voice) as sizes:
        single.synthesize_batch(requests)
    assert sizes == [1] * 8


def test_the_synthesize_stage_batches_its_turns(model_dir):
    def stage(batched: bool) -> Synthesize:
        s = Synthesize(parse_config({"synthesis": {
            "backend": "coqui", "assistant_voice": f"{model_dir}#ada", "user_voices": [f"{model_dir}#bo", f"{model_dir}#cy"],
            "batch_size": 4, "coqui": {"batched": batched}}}))
        s.ensure_setup()
        return s

    turns = [Turn(id=f"t{i}", source="s", source_position=f"s:{i}", conversation_id=f"c{i}", turn_index=0, history=[],
                  question_text=q, answer_text=a, question_spoken=q, answer_spoken=a, answer_sentences=[a])
             for i, (q, a) in enumerate(zip(TEXTS, TEXTS[1:] + TEXTS[:1]))]
    batched = stage(True)
    assert batched.resources.num_gpus == 0.0
    with _batch_sizes(batched.backend.backends["coqui"], f"{model_dir}#ada") as sizes:
        kept, rejected = batched.process(turns)
    assert rejected == [] and max(sizes) == 4 and sum(sizes) == 2 * len(turns)
    single_kept, _ = stage(False).process(turns)
    for a, b in zip(kept, single_kept, strict=True):
        assert a.question_speech.sample_rate == 16_000
        _assert_same([a.question_speech, a.answer_speech], [b.question_speech, b.answer_speech])
