"""The dataset card (README.md): YAML that declares configs and features, and a summary."""

from __future__ import annotations

from typing import Any

import yaml

from echoforge.schemas.columns import REJECT_FEATURES, ROW_FEATURES


def card_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML: one config per table that holds rows.

    `datasets` cannot load a split (or config) without rows, so a table with none is not
    declared; a build that kept no rows makes its rejects the default config, so that
    ``load_dataset(DIR)`` shows why.
    """
    arrow = manifest["format"] == "arrow"
    pattern = "{split}/data-*.arrow" if arrow else "data/{split}-*.parquet"
    splits = [s for s, n in manifest["rows_by_split"].items() if n]  # a split with no rows has no files
    configs, info = [], []
    if splits:
        configs.append({"config_name": "default", "default": True,
                        "data_files": [{"split": s, "path": pattern.format(split=s)} for s in splits]})
        info.append({"config_name": "default", "features": ROW_FEATURES._to_yaml_list(),
                     "splits": [{"name": s, "num_examples": manifest["rows_by_split"][s],
                                 "num_bytes": sum(e["bytes"] for e in manifest["shards"] if e["split"] == s)}
                                for s in splits]})
    if manifest["rejected"]:
        configs.append({"config_name": "rejects", **({} if splits else {"default": True}),
                        "data_files": [{"split": "train", "path": "rejects/rejects-*.parquet"}]})
        info.append({"config_name": "rejects", "features": REJECT_FEATURES._to_yaml_list(),
                     "splits": [{"name": "train", "num_examples": manifest["rejected"],
                                 "num_bytes": sum(e["bytes"] for e in manifest["rejects"])}]})
    return {
        "configs": configs,
        "dataset_info": info,
        "task_categories": ["text-to-speech", "automatic-speech-recognition"],
        "language": ["en"],
        "tags": ["echoforge", "speech-units", "synthetic-speech"],
    }


def _empty_note(manifest: dict[str, Any]) -> str:
    if not manifest["rows"]:
        return "\nThis build kept no rows: its default config holds the rejects, which say why.\n"
    if not manifest["rejected"]:
        return "\nThis build rejected nothing, so it has no `rejects` config.\n"
    return ""


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
{_empty_note(manifest)}
## Rejects by reason

| stage.reason | count |
| --- | --- |
{reasons}

Columns are described in echoforge's `docs/columns.md`; `manifest.json` lists every shard
with its rows, hours and sha256, the resolved config and every model's identity.
"""
    folder.write_bytes("README.md", f"---\n{meta}---\n\n{body}".encode("utf-8"))
