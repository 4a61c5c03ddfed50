"""Padded batches through wav2vec2-style encoders (HuBERT, wav2vec2) of ``transformers``.

The convolutional front end runs per utterance, since the group norm of base-size models spans
the whole utterance; its frames are then padded and the transformer runs once over the batch
with an attention mask. Each utterance thus gets the states it gets alone (to float rounding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RECEPTIVE_FIELD = 400  # samples of one frame of the convolutional front end (25 ms at 16 kHz)


def padded_encoder_states(model, waves: list[np.ndarray], device: str) -> list[np.ndarray]:
    """Last transformer states (frames, dim) of each 16 kHz waveform, for a ``HubertModel`` or
    ``Wav2Vec2Model`` (``model.feature_extractor``, ``feature_projection``, ``encoder``)."""
    import torch

    with torch.no_grad():
        fronts = []
        for wav in waves:
            if len(wav) < RECEPTIVE_FIELD:
                wav = np.pad(wav, (0, RECEPTIVE_FIELD - len(wav)))
            x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(device)
            fronts.append(model.feature_extractor(x)[0].transpose(0, 1))  # (frames, conv_dim)
        lengths = [len(f) for f in fronts]
        padded = torch.nn.utils.rnn.pad_sequence(fronts, batch_first=True)
        mask = torch.arange(padded.shape[1], device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
        hidden = model.feature_projection(padded)
        if isinstance(hidden, tuple):  # wav2vec2 also returns the normed conv features
            hidden = hidden[0]
        out = model.encoder(hidden, attention_mask=mask if len(waves) > 1 else None).last_hidden_state
        return [out[i, :n] for i, n in enumerate(lengths)]


def preprocessor_normalizes(model_path: str) -> bool:
    """Whether the model's ``preprocessor_config.json`` asks for zero-mean unit-variance input
    (False when there is none, as for fairseq's HuBERT base)."""
    config = Path(model_path) / "preprocessor_config.json"
    return bool(json.loads(config.read_text()).get("do_normalize", False)) if config.exists() else False


def normalized(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (``Wav2Vec2FeatureExtractor``'s ``do_normalize``)."""
    return ((wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)).astype(np.float32)
