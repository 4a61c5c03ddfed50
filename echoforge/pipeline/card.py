"""The dataset card (README.md): YAML that declares configs and features, and a summary."""

from __future__ import annotations

from typing import Any

import yaml

from echoforge.schemas.columns import REJECT_FEATURES, ROW_FEATURES


def card_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    arrow = manifest["format"] == "arrow"
    pattern = "{split}/data-*.arrow" if arrow else "data/{split}-*.parquet"
    splits = [s for s, n in manifest["rows_by_split"].items() if n]  # a split with no rows has no files
    configs = [{"config_name": "default", "default": True,
                "data_files": [{"split": s, "path": pattern.format(split=s)} for s in splits]}]
    info = [{"config_name": "default", "features": ROW_FEATURES._to_yaml_list(),
             "splits": [{"name": s, "num_examples": manifest["rows_by_split"][s]} for s in splits]}]
    if manifest["rejected"]:
        configs.append({"config_name": "rejects", "data_files": [{"split": "train", "path": "rejects/rejects-*.parquet"}]})
        info.append({"config_name": "rejects", "features": REJECT_FEATURES._to_yaml_list(),
                     "splits": [{"name": "train", "num_examples": manifest["rejected"]}]})
    return {
        "configs": configs,
        "dataset_info": info,
        "task_categories": ["text-to-speech", "automatic-speech-recognition"],
        "language": ["en"],
        "tags": ["echoforge", "speech-units", "synthetic-speech"],
    }


def write_card(folder, manifest: dict[str, Any]) -> None:
    """Write README.md (the card) into an output folder (:class:`echoforge.storage.DataFolder`)."""
    meta = yaml.safe_dump(card_metadata(manifest), sort_keys=False, allow_unicode=True)
    tok = manifest["models"].get("tokenizer", "?")
    reasons = "\n".join(f"| {k} | {v} |" for k, v in manifest["rejects_by_reason"].items()) or "| (none) | 0 |"
    body = f"""# Echo-training speech corpus

Built with echoforge {manifest['packages'].get('echoforge', '')}: spoken questions (16 kHz), spoken answers,
answer speech units and word/segment alignments, for speech-to-text, text-to-unit and
echo training.

| figure | value |
| --- | --- |
| rows | {manifest['rows']} (train {manifest['rows_by_split']['train']}, validation {manifest['rows_by_split']['validation']}) |
| hours of speech | {manifest['hours']:.3f} (answers {manifest['answer_hours']:.3f}) |
| rejected turns | {manifest['rejected']} |
| unit tokenizer | `{tok}` |

```python
from datasets import load_dataset
ds = load_dataset("path/or/hub/name")       # train and validation splits
rejects = load_dataset("path/or/hub/name", "rejects")
```

## Rejects by reason

| stage.reason | count |
| --- | --- |
{reasons}

Columns are described in echoforge's `docs/columns.md`; `manifest.json` lists every shard
with its rows, hours and sha256, the resolved config and every model's identity.
"""
    folder.write_bytes("README.md", f"---\n{meta}---\n\n{body}".encode("utf-8"))
