"""Ingest: input rows in any supported layout → conversations → one Turn per user→assistant turn.

Layouts: ShareGPT (``conversations: [{from, value}]``), OpenAI messages
(``messages: [{role, content}]``), Alpaca (``instruction``, ``input``, ``output``), plain
``question``/``answer``, and any other layout through :class:`~echoforge.config.FieldMapping`.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import re
from typing import Any, Callable

from echoforge.config import BuildConfig, FieldMapping
from echoforge.io.readers import RawRow
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.base import Resources, Stage

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
_ROLE_NAMES = {
    "human": USER, "user": USER, "prompter": USER, "question": USER,
    "gpt": ASSISTANT, "assistant": ASSISTANT, "bot": ASSISTANT, "model": ASSISTANT, "chatgpt": ASSISTANT,
    "system": SYSTEM,
}
_ID_FIELDS = ("id", "conversation_id", "uuid", "idx")
_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_DETAIL = 300

log = logging.getLogger(__name__)


class BadRow(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


Message = tuple[str, str]  # (role, text)


def row_id(source: str, position: int, turn_index: int | None = None) -> str:
    """Stable id of a turn: a hash of its input and position, plus the turn index.

    Without a turn index it names the input row itself (used for rows that yield no turn).
    """
    digest = hashlib.blake2b(f"{source}\0{position}".encode(), digest_size=8).hexdigest()
    return digest if turn_index is None else f"{digest}-{turn_index:03d}"


def get_path(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def clean_text(text: str) -> str:
    """Text that can be written as UTF-8: lone surrogates (valid in JSON escapes) become U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def _scalar(value: Any, where: str) -> str | None:
    """Text of a scalar (string, number, boolean, null); None for arrays and objects."""
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Number):
        try:
            return str(value)
        except ValueError:  # an integer longer than Python will print
            raise BadRow("bad_field", f"{where} is a number too long to read") from None
    if isinstance(value, (list, tuple, dict)):
        return None
    raise BadRow("bad_field", f"{where} is a {type(value).__name__}, not text")


def _text(value: Any, where: str) -> str:
    """Text of any JSON value: a scalar, or content parts (strings and ``{"type", "text"}`` objects).

    Parts that are not text (images, audio) are left out; anything else (an object without
    text, a list inside a list) is a bad field.
    """
    text = _scalar(value, where)
    if text is not None:
        return text
    if isinstance(value, dict):
        if "text" not in value and "type" not in value:
            raise BadRow("bad_field", f"{where} is an object, not text")
        value = [value]
    parts = []
    for i, part in enumerate(value):
        if isinstance(part, dict):
            if part.get("text") is None and part.get("type", "text") != "text":
                continue  # an image or other non-text part
            part = part.get("text")
        text = _scalar(part, f"{where}[{i}]")
        if text is None:
            raise BadRow("bad_field", f"{where}[{i}] is a {type(part).__name__}, not text")
        if text:
            parts.append(text)
    return "\n".join(parts)


def _role(raw: Any, where: str, user_roles: list[str] = (), assistant_roles: list[str] = ()) -> str:
    name = _scalar(raw, where)
    if name is None:
        raise BadRow("bad_field", f"{where} is a {type(raw).__name__}, not a role")
    name = name.strip().lower()
    if name in user_roles:
        return USER
    if name in assistant_roles:
        return ASSISTANT
    return _ROLE_NAMES.get(name, name)


def _messages(items: Any, role_key: str, text_key: str, field: str,
              user_roles: list[str] = (), assistant_roles: list[str] = ()) -> list[Message]:
    if not isinstance(items, list):
        raise BadRow("bad_field", f"'{field}' is not a list of messages")
    out = []
    for i, m in enumerate(items):
        if not isinstance(m, dict) or role_key not in m:
            raise BadRow("missing_field", f"message {i} of '{field}' has no '{role_key}'")
        role = _role(m[role_key], f"{field}[{i}].{role_key}", user_roles, assistant_roles)
        out.append((role, _text(m.get(text_key), f"{field}[{i}].{text_key}")))
    return out


def _sharegpt(r: dict[str, Any]) -> list[list[Message]]:
    return [_messages(r["conversations"], "from", "value", "conversations")]


def _openai(r: dict[str, Any]) -> list[list[Message]]:
    return [_messages(r["messages"], "role", "content", "messages")]


def _alpaca(r: dict[str, Any]) -> list[list[Message]]:
    question = _join(_text(r.get("instruction"), "instruction"), _text(r.get("input"), "input"))
    return [[(USER, question), (ASSISTANT, _text(r.get("output"), "output"))]]


def _qa(r: dict[str, Any]) -> list[list[Message]]:
    return [[(USER, _text(r.get("question"), "question")), (ASSISTANT, _text(r.get("answer"), "answer"))]]


def _join(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _mapped(m: FieldMapping) -> Callable[[dict[str, Any]], list[list[Message]]]:
    def parse(r: dict[str, Any]) -> list[list[Message]]:
        if m.messages:
            items = get_path(r, m.messages)
            if items is None:
                raise BadRow("missing_field", f"no '{m.messages}' field")
            return [_messages(items, m.role, m.content, m.messages, m.user_roles, m.assistant_roles)]
        if m.instances:
            instruction = _text(get_path(r, m.instruction), m.instruction)
            instances = get_path(r, m.instances)
            if not isinstance(instances, list):
                raise BadRow("missing_field", f"no list at '{m.instances}'")
            convs = []
            for i, inst in enumerate(instances):
                if not isinstance(inst, dict):
                    raise BadRow("bad_field", f"{m.instances}[{i}] is not an object")
                q = _join(instruction, _text(inst.get(m.instance_input), f"{m.instances}[{i}].{m.instance_input}"))
                a = _text(inst.get(m.instance_output), f"{m.instances}[{i}].{m.instance_output}")
                convs.append([(USER, q), (ASSISTANT, a)])
            return convs
        for f in (m.question, m.answer):
            if get_path(r, f) is None:
                raise BadRow("missing_field", f"no '{f}' field")
        q = _join(_text(get_path(r, m.question), m.question),
                  _text(get_path(r, m.context), m.context) if m.context else "")
        return [[(USER, q), (ASSISTANT, _text(get_path(r, m.answer), m.answer))]]

    return parse


FORMATS: dict[str, Callable[[dict[str, Any]], list[list[Message]]]] = {
    "sharegpt": _sharegpt,
    "openai": _openai,
    "alpaca": _alpaca,
    "qa": _qa,
}
_REQUIRED = {"sharegpt": ("conversations",), "openai": ("messages",), "alpaca": ("instruction", "output"),
             "qa": ("question", "answer")}


def detect_format(record: dict[str, Any]) -> str | None:
    """The built-in layout a record is in, or None."""
    for name, keys in _REQUIRED.items():
        if all(k in record for k in keys):
            return name
    return None


def _source_id(value: Any) -> str | None:
    """An id field's value as text, when it is a non-empty scalar."""
    try:
        return _scalar(value, "id") or None
    except BadRow:
        return None


class Ingest(Stage[RawRow]):
    """Parse raw rows into turns; unreadable or unknown rows become rejects."""

    name = "ingest"

    @property
    def resources(self) -> Resources:
        return Resources(batch_size=64)

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        c = config.ingest
        self._parser = _mapped(c.mapping) if c.format == "mapping" else FORMATS.get(c.format)

    def process(self, batch: list[RawRow]) -> tuple[list[Turn], list[Reject]]:
        kept: list[Turn] = []
        rejected: list[Reject] = []
        for row in batch:
            try:
                kept.extend(self._turns(row))
            except BadRow as bad:
                rejected.append(self._reject(row, bad.reason, bad.detail))
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop the batch
                log.debug("ingest failed on %s", row.label, exc_info=True)
                rejected.append(self._reject(row, "error", f"{type(exc).__name__}: {exc}"))
        return kept, rejected

    def _reject(self, row: RawRow, reason: str, detail: str) -> Reject:
        return Reject(id=row_id(row.source_id or row.source, row.position), source=row.source,
                      source_position=row.label, stage=self.name, reason=reason,
                      detail=clean_text(detail[:_MAX_DETAIL]), input_row=row.position, work_unit=row.work_unit)

    def _turns(self, row: RawRow) -> list[Turn]:
        if row.error is not None:
            raise BadRow("unreadable_row", row.error or "the reader gave no reason")
        record = row.data or {}
        parser = self._parser
        if parser is None:
            fmt = detect_format(record)
            if fmt is None:
                keys = ", ".join(sorted(map(str, record))[:8])[:200] or "none"
                raise BadRow("unknown_format",
                             f"fields ({keys}) match no known layout; set ingest.format and ingest.mapping")
            parser = FORMATS[fmt]
        try:
            conversations = parser(record)
        except KeyError as exc:
            raise BadRow("missing_field", f"no {exc} field") from None
        id_paths = list(_ID_FIELDS)
        if self.config.ingest.format == "mapping" and self.config.ingest.mapping.id:
            id_paths.insert(0, self.config.ingest.mapping.id)
        source_id = next(filter(None, (_source_id(get_path(record, p)) for p in id_paths)), None)
        conv_base = source_id or f"{row.source}#{row.position}"
        turns: list[Turn] = []
        turn_index = 0
        for ci, messages in enumerate(conversations):
            conv_id = conv_base if len(conversations) == 1 else f"{conv_base}/{ci}"
            new = self._pair(row, conv_id, messages, turn_index)
            turns.extend(new)
            turn_index += len(new)
        if not turns:
            raise BadRow("no_turns", "no user message followed by an assistant message")
        return turns

    def _pair(self, row: RawRow, conv_id: str, messages: list[Message], first_index: int) -> list[Turn]:
        keep_system = self.config.ingest.system_prompts == "history"
        max_hist = self.config.ingest.max_history_turns * 2
        turns: list[Turn] = []
        history: list[dict[str, str]] = []
        pending: list[str] = []
        for role, text in messages:
            if role == USER:
                pending.append(text)
            elif role == ASSISTANT and pending:
                index = first_index + len(turns)
                question = "\n\n".join(pending)
                turns.append(Turn(
                    id=row_id(row.source_id or row.source, row.position, index),
                    source=row.source,
                    source_position=row.label,
                    conversation_id=conv_id,
                    turn_index=index,
                    history=history[-max_hist:] if max_hist else [],
                    question_text=question,
                    answer_text=text,
                    input_row=row.position,
                    work_unit=row.work_unit,
                ))
                history = history + [{"role": USER, "text": question}, {"role": ASSISTANT, "text": text}]
                pending = []
            elif role == ASSISTANT:
                history.append({"role": ASSISTANT, "text": text})
            elif role == SYSTEM and keep_system:
                history.append({"role": SYSTEM, "text": text})
        return turns
