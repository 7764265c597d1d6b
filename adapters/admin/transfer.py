"""Export and import entries as JSON Lines (one entry per line; vectors as base64 float32).

An export holds everything needed to rebuild the index elsewhere: scope,
prompt, history, response, embeddings and the embedder's name, timestamps
and savings counters. Import adds the entries under new ids (hit counts and
savings come along; wrong-hit reports start again at zero).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from semcache.storage.store import EntryRow, HitDelta, NewEntry, Store

FORMAT = "semcache.entry.v1"
_VECTORS = ("embedding", "history_embedding")
_TIMES = ("created_at", "expires_at", "last_hit_at")


def entry_to_json(row: EntryRow) -> dict[str, Any]:
    """One entry as a JSON-ready dict."""
    out: dict[str, Any] = {"format": FORMAT}
    for name in EntryRow.__slots__:  # type: ignore[attr-defined]
        value = getattr(row, name)
        if name in _VECTORS:
            value = None if value is None else base64.b64encode(np.asarray(value, np.float32).tobytes()).decode()
        elif name in _TIMES:
            value = None if value is None else value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _vector(text: str | None) -> np.ndarray | None:
    return None if text is None else np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def entry_from_json(data: dict[str, Any]) -> tuple[NewEntry, HitDelta | None]:
    """The entry to add and its hit counters; ValueError on a line that is not an export."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} record")
    embedding = _vector(data["embedding"])
    entry = NewEntry(
        partition=data["partition"], exact_key=data["exact_key"], tenant=data["tenant"], model=data["model"],
        params_hash=data["params_hash"], category=data["category"], prompt=data["prompt"],
        prompt_norm=data["prompt_norm"], prompt_hash=data["prompt_hash"], context_hash=data["context_hash"],
        response=data["response"], embedding=embedding, embedder=data["embedder"],  # type: ignore[arg-type]
        user_id=data.get("user_id"), history=list(data.get("history") or []),
        history_embedding=_vector(data.get("history_embedding")), expires_at=_time(data.get("expires_at")),
        doc_keys=list(data.get("doc_keys") or []), created_at=_time(data.get("created_at")),
        tokens=int(data.get("tokens", 0)), cost=float(data.get("cost", 0.0)),
        latency_ms=float(data.get("latency_ms", 0.0)))
    hits = None
    if int(data.get("hit_count", 0)) > 0:
        hits = HitDelta(count=int(data["hit_count"]), tokens_saved=int(data.get("tokens_saved", 0)),
                        cost_saved=float(data.get("cost_saved", 0.0)),
                        latency_saved_ms=float(data.get("latency_saved_ms", 0.0)),
                        at=_time(data.get("last_hit_at")))
    return entry, hits


def export_jsonl(store: Store, path: str | Path) -> int:
    """Write every entry to ``path``; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for batch in store.iter_entries():
            for row in batch:
                out.write(json.dumps(entry_to_json(row), ensure_ascii=False) + "\n")
                count += 1
    return count


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as src:
        for number, line in enumerate(src, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc


def import_jsonl(store: Store, path: str | Path) -> list[int]:
    """Add every entry of an export to ``store``; returns the new ids. Validates each line first."""
    path = Path(path)
    parsed = []
    for number, data in _lines(path):
        try:
            parsed.append(entry_from_json(data))
            parsed[-1][0].validate()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
    ids = []
    for entry, hits in parsed:
        entry_id = store.add_entry(entry)
        if hits is not None:
            store.record_hits({entry_id: hits})
        ids.append(entry_id)
    return ids
