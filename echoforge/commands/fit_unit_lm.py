"""``echoforge fit-unit-lm``: a unit language (sentencepiece over deduplicated units) fitted on a
built corpus's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from echoforge.backends.units.unit_lm import UnitLanguageModel, fit_unit_lm
from echoforge.errors import EchoforgeError
from echoforge.pipeline.output import iter_shards


def corpus_unit_sequences(root: str | Path, split: str = "train",
                          limit: int | None = None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Deduplicated first-codebook units of a built corpus's rows, and what they are."""
    cols = ["answer_units_dedup", "units_tokenizer", "units_codebook_size"]
    sequences: list[np.ndarray] = []
    tokenizers: set[str] = set()
    sizes: set[int] = set()
    for _, table in iter_shards(root, cols, split=split):
        for r in table.to_pylist():
            if limit is not None and len(sequences) >= limit:
                break
            if not r["answer_units_dedup"]:
                continue
            sequences.append(np.asarray(r["answer_units_dedup"][0], dtype=np.int32))
            tokenizers.add(r["units_tokenizer"])
            sizes.add(int(r["units_codebook_size"]))
    if not sequences:
        raise EchoforgeError(f"{root} has no rows with units in split '{split}'")
    if len(tokenizers) > 1 or len(sizes) > 1:
        raise EchoforgeError(f"{root} mixes tokenizers ({', '.join(sorted(tokenizers))}); fit on one")
    return sequences, {"tokenizer": tokenizers.pop(), "codebook_size": sizes.pop(), "split": split}


def fit_corpus_unit_lm(directory: str | Path, output: str | Path, *, vocab_size: int, model_type: str = "bpe",
                       split: str = "train", limit: int | None = None) -> tuple[UnitLanguageModel, dict[str, Any], int]:
    """Fit a unit language on a corpus's answers; (the model, what the units are, rows used)."""
    sequences, info = corpus_unit_sequences(directory, split=split, limit=limit)
    command = (f"echoforge fit-unit-lm {Path(directory).name} --output {Path(output).name} --vocab-size {vocab_size}"
               + (f" --model-type {model_type}" if model_type != "bpe" else "")
               + (f" --split {split}" if split != "train" else "") + (f" --limit {limit}" if limit else ""))
    lm = fit_unit_lm(sequences, output, vocab_size=vocab_size, codebook_size=info["codebook_size"],
                     model_type=model_type, provenance={"tokenizer": info["tokenizer"], "split": split,
                                                        "corpus": Path(directory).name, "command": command})
    return lm, info, len(sequences)
