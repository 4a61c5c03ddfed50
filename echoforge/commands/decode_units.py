"""``echoforge decode-units``: turn a corpus's codec units back into audio to listen to.

The build's tokenizer (from the manifest's config, or another copy of its model with
``model``) decodes each row's ``answer_units``; one WAV per row is written at the codec's
sample rate, ``frames / frame_rate`` seconds long. Only codec units (encodec, mimi) have a
decoder; k-means units need a unit vocoder trained on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from echoforge.backends.units import create_tokenizer
from echoforge.backends.units.base import UnitTokenizer
from echoforge.config import parse_config
from echoforge.errors import ConfigError, EchoforgeError
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.storage import safe_name

_COLUMNS = ["id", "answer_units", "units_tokenizer", "units_frame_rate"]


def wav_name(row_id: str) -> str:
    return safe_name(row_id, ".wav")


def decode_units(root: str | Path, output: str | Path, *, rows: int | None = None, model: str | None = None,
                 device: str = "cpu", progress=None) -> dict[str, Any]:
    """Decode the first ``rows`` rows' answer units of a build into WAV files under ``output``."""
    import soundfile as sf

    manifest = load_manifest(root)
    units = parse_config(manifest["config"]).units
    tokenizer = create_tokenizer(units, device=device, **({"model": model} if model else {}))
    if type(tokenizer).decode is UnitTokenizer.decode:
        tokenizer.decode(np.zeros((1, 0), np.int32))  # raises the one-line reason
    tokenizer.setup()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    for _, table in iter_shards(root, _COLUMNS):
        for r in table.to_pylist():
            if rows is not None and len(written) >= rows:
                break
            if r["answer_units"] is None:
                continue
            if r["units_tokenizer"] != tokenizer.tag:
                raise ConfigError(f"row {r['id']} holds {r['units_tokenizer']} units, but the model loaded "
                                  f"gives {tokenizer.tag}: point --model at the checkpoint the build used")
            codes = np.asarray(r["answer_units"], dtype=np.int64)
            audio = tokenizer.decode(codes)
            path = out / wav_name(r["id"])
            sf.write(path, np.clip(audio, -1.0, 1.0), tokenizer.sample_rate, subtype="PCM_16")
            written.append({"id": r["id"], "path": str(path), "frames": int(codes.shape[1]),
                            "seconds": round(len(audio) / tokenizer.sample_rate, 4)})
            if progress:
                progress(len(written), rows)
    if not written:
        raise EchoforgeError(f"{root} has no rows with answer units to decode")
    return {"corpus": str(root), "tokenizer": tokenizer.tag, "sample_rate": tokenizer.sample_rate,
            "rows": len(written), "seconds": round(sum(w["seconds"] for w in written), 2), "files": written}
