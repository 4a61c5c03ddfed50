"""Tiny randomly initialised models saved with the libraries' own ``save_pretrained``, for the
unit tokenizer and aligner tests, and a speech-like test signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    sig = env * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 900 * t * (1 + 0.2 * t)))
    return (0.3 * sig + 0.01 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def save_hubert(path: Path, layers: int = 3) -> Path:
    """A tiny HubertModel (32-dim, ``layers`` layers, the base architecture's 320× front end)."""
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    HubertModel(config).eval().save_pretrained(path)
    return path


def _spread_codebooks(model, scale: float) -> None:
    """Random codebook entries (a fresh model's are all zero, so every frame would get code 0)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        for buffer in ("embed", "embed_sum"):
            value = getattr(module, buffer, None) if buffer in module._buffers else None
            if value is not None:
                value.copy_(torch.randn(value.shape, generator=gen) * scale)


def save_encodec(path: Path) -> Path:
    """A tiny 24 kHz EnCodec (hop 320: 75 Hz; 6 codebooks of 64)."""
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, codebook_size=64, num_lstm_layers=1,
                           target_bandwidths=[1.5, 3.0], upsampling_ratios=[8, 5, 4, 2])
    model = EncodecModel(config).eval()
    # random codebook entries spread like the encoder's frames (and their residuals), so that
    # frames differ in their codes and no two entries tie
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        residual = model.encoder(torch.from_numpy(speechlike(3.0, 24_000, seed=7))[None, None])  # (1, 16, T)
        for layer in model.quantizer.layers:
            frames = residual[0].T
            entries = frames.mean(0) + torch.randn(64, frames.shape[1], generator=gen) * frames.std(0)
            layer.codebook.embed.copy_(entries)
            residual = residual - layer.decode(layer.encode(residual))
    model.save_pretrained(path)
    return path


def save_mimi(path: Path) -> Path:
    """A tiny Mimi (24 kHz, 12.5 Hz; 4 codebooks of 64, the first semantic)."""
    import torch
    from transformers import MimiConfig, MimiModel

    torch.manual_seed(0)
    config = MimiConfig(hidden_size=16, num_filters=4, codebook_dim=16, codebook_size=64, num_quantizers=4,
                        num_semantic_quantizers=1, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=2, head_dim=8, intermediate_size=32, sliding_window=50,
                        upsample_groups=16, vector_quantization_hidden_dimension=16)
    model = MimiModel(config).eval()
    _spread_codebooks(model, 0.3)
    model.save_pretrained(path)
    return path


def save_wav2vec2_ctc(path: Path) -> Path:
    """A tiny Wav2Vec2ForCTC with a character CTC tokenizer (blank = <pad>, words split by |)."""
    import json

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    path.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3, **{chr(ord("A") + i): 4 + i for i in range(26)}}
    (path / "vocab.json").write_text(json.dumps(vocab))
    Wav2Vec2CTCTokenizer(str(path / "vocab.json")).save_pretrained(path)
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            vocab_size=len(vocab), pad_token_id=0)
    Wav2Vec2ForCTC(config).eval().save_pretrained(path)
    return path
