"""Screening markdown blocks before normalising: unfenced code, tables, gaps, dependent sentences.

Lines of a block that are code, notation or a table without pipes are dropped as a run (or the
row is rejected, per the ``code``/``tables`` policies), and so is every sentence that is code,
that lost a URL or inline code it needs (a parenthetical holding the gap goes alone), that is
written in a non-Latin script, or that is in a language the voice does not speak. A lead-in
ending in ':' goes with the part it introduced. Identifiers inside prose are said as words.
Where the config names placeholders, they are said instead of dropping (``url_placeholder``,
``block_placeholder``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from echoforge.text.code_detect import (
    classify, drop_foreign_words, drop_symbol_runs, is_table, speak_identifiers,
)
from echoforge.config import SpeakableConfig

URL_GAP = "\ue000"  # where a URL was taken out
CODE_GAP = "\ue001"  # where unreadable inline code was taken out
_MAX_IDENTIFIERS = 3  # a sentence naming more identifiers than this is code, not prose
_MAX_TABLE_SCAN = 60  # lines of one block searched for tables without pipes
_CONTINUES = (":", "{", "(", "[", ",", "\\", "=", "+", "&&", "||", "|")
_PARENTHETICAL_GAP = re.compile(rf"\s*\([^()]*[{URL_GAP}{CODE_GAP}][^()]*\)")


@dataclass
class Item:
    """One sentence to say, or one dropped part, in reading order."""

    block: int
    text: str = ""
    gone: str | None = None  # the policy kind of a dropped part ("code", "table", "url", "script")


def _shorten(text: str, n: int = 60) -> str:
    text = text.replace(URL_GAP, "…").replace(CODE_GAP, "…")
    return text if len(text) <= n else text[: n - 1] + "…"


class Screen:
    """Turns a text's blocks into the sentences worth saying, noting everything left out."""

    def __init__(self, policy: SpeakableConfig, segment: Callable[[str], list[str]],
                 skip: Callable[[str, str, str], None], foreign: Callable[[str], str | None] | None = None):
        self.policy = policy
        self.segment = segment
        self.skip = skip  # skip(kind, policy, what): note a dropped part, refuse per the policy
        self.foreign = foreign  # the language a sentence is in when the voice cannot speak it, else None

    def _policy(self, kind: str) -> str:
        return {"code": self.policy.code, "table": self.policy.tables}.get(kind, "drop")

    def lines(self, index: int, spoken: list[str], raw: list[str], closing: bool) -> list[Item]:
        """Items of one block: runs of code or table lines dropped, prose lines kept as sentences."""
        kinds: list[tuple[str, str] | None] = [None] * len(spoken)
        if 2 <= len(raw) <= _MAX_TABLE_SCAN:
            i = 0
            while i < len(raw):
                for j in range(len(raw), i + 1, -1):
                    if is_table(raw[i:j]):
                        kinds[i:j] = [("table", "table without pipes")] * (j - i)
                        i = j
                        break
                else:
                    i += 1
        for i, (said, written) in enumerate(zip(spoken, raw)):
            if kinds[i] is not None:
                continue
            finding = classify(said.replace(URL_GAP, " ") if URL_GAP in said else written)
            previous = kinds[i - 1] if i else None
            if finding is not None and finding.kind != "script" and (len(spoken) > 1 or self._mostly(said, finding)):
                kinds[i] = (finding.kind, finding.what)
            elif previous is not None and previous[0] == "code" and written.strip() and (
                    written[:1].isspace() or raw[i - 1].rstrip().endswith(_CONTINUES)
                    or not any(ch.isalpha() for ch in written)):
                kinds[i] = previous  # the body of a multi-line statement
        items: list[Item] = []
        run: list[str] = []

        def flush() -> None:
            text = " ".join(s.strip() for s in run if s.strip())
            run.clear()
            if not text:
                return
            if closing and text[-1] not in ".!?:;":
                text += "."
            items.extend(Item(index, s.strip()) for s in self.segment(text) if s.strip())

        i = 0
        while i < len(spoken):
            if kinds[i] is None:
                run.append(spoken[i])
                i += 1
                continue
            flush()
            j = i
            while j < len(spoken) and kinds[j] == kinds[i]:
                j += 1
            kind, what = kinds[i]
            self.skip(kind, self._policy(kind), f"{what} ({j - i} line{'s' if j - i > 1 else ''})")
            items.append(Item(index, gone=kind))
            i = j
        flush()
        return items

    def _mostly(self, line: str, finding) -> bool:
        """A one-line block is dropped whole when most of its sentences are unspeakable on their own."""
        parts = [p for p in self.segment(line) if p.strip()]
        return len(parts) < 2 or sum(classify(p) is not None for p in parts) > len(parts) / 2

    def sentence(self, item: Item) -> Item:
        """The sentence as it can be said, or the item marked gone with the reason noted."""
        s = item.text
        if URL_GAP in s and self.policy.url_placeholder:
            s = s.replace(URL_GAP, self.policy.url_placeholder)
        if URL_GAP in s or CODE_GAP in s:
            s = _PARENTHETICAL_GAP.sub("", s)
        if URL_GAP in s or CODE_GAP in s:
            need = "URL" if URL_GAP in s else "inline code"
            self.skip("gap", "drop", f"sentence that needs the {need}: {_shorten(s)!r}")
            return Item(item.block, gone="url" if need == "URL" else "code")
        finding = classify(s)
        if finding is not None:
            self.skip(finding.kind, self._policy(finding.kind), f"{finding.what}: {_shorten(s)!r}")
            return Item(item.block, gone=finding.kind)
        language = self.foreign(s) if self.foreign is not None else None
        if language:
            self.skip("language", "drop", f"sentence in {language}: {_shorten(s)!r}")
            return Item(item.block, gone="language")
        s, script = drop_foreign_words(s)
        if script:
            self.skip("script", "drop", f"words in {script} script")
        s, runs = drop_symbol_runs(s)
        if runs:
            self.skip("code", "drop", f"{runs} symbol run{'s' if runs > 1 else ''}")
        s, names = speak_identifiers(s)
        if names > _MAX_IDENTIFIERS:
            self.skip("code", self._policy("code"), f"sentence of {names} identifiers: {_shorten(item.text)!r}")
            return Item(item.block, gone="code")
        return Item(item.block, s)

    def __call__(self, blocks) -> list[str]:
        """Speakable text of each kept block, in order."""
        items: list[Item] = []
        for index, block in enumerate(blocks):
            if block.dropped is not None:
                items.append(Item(index, gone="table" if block.dropped.startswith("table") else "code"))
            else:
                items.extend(self.sentence(it) if it.gone is None else it
                             for it in self.lines(index, block.lines, block.raw, block.closing))
        items = self._lead_ins(items)
        texts: dict[int, list[str]] = {}
        for it in items:
            if it.gone is None and it.text:
                texts.setdefault(it.block, []).append(it.text)
        return [" ".join(parts) for parts in texts.values()]

    def _lead_ins(self, items: list[Item]) -> list[Item]:
        """Drop (or close with a placeholder) each sentence ending in ':' whose next part is gone."""
        out: list[Item] = []
        for k, it in enumerate(items):
            if it.gone is not None:
                if out and out[-1].gone is None and out[-1].text.rstrip().endswith(":"):
                    lead = out.pop()
                    if self.policy.block_placeholder and it.gone in ("code", "table"):
                        out.append(Item(lead.block, lead.text.rstrip()[:-1].rstrip() + "."))
                    else:
                        self.skip("lead-in", "drop", f"lead-in {_shorten(lead.text)!r}")
                if self.policy.block_placeholder and it.gone in ("code", "table") \
                        and not (out and out[-1].gone == it.gone):
                    out.append(Item(it.block, self.policy.block_placeholder.format(what=it.gone)))
                out.append(it)
            else:
                out.append(it)
        return out
