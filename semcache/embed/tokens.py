"""Tokenisation shared by the MiniLM backends: the tokenizer, padding and length groups."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MIN_GROUP = 8  # rows a batch holds before padding may end it


def load_tokenizer(path: Path, max_len: int) -> Any:
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json``, truncating at ``max_len``, unpadded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json ships fixed padding to 128; batches are padded to their longest row instead.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)
    return tokenizer


def pad(id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token ids: int64 ``input_ids`` and ``attention_mask`` ``[B, T]``."""
    width = max(len(ids) for ids in id_lists)
    input_ids = np.zeros((len(id_lists), width), dtype=np.int64)
    mask = np.zeros((len(id_lists), width), dtype=np.int64)
    for row, ids in enumerate(id_lists):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def length_groups(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Cut length-sorted rows into batches of at most ``batch_size``.

    A batch also ends where the next, longer row would leave more than 10% of its
    padded tokens as padding, once it holds ``MIN_GROUP`` rows (measurements:
    docs/design/core.md).
    """
    groups: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for row in order:
        length = lengths[row]
        full = len(current) >= batch_size
        padded = len(current) >= MIN_GROUP and tokens + length < 0.9 * length * (len(current) + 1)
        if current and (full or padded):
            groups.append(current)
            current, tokens = [], 0
        current.append(row)
        tokens += length
    if groups and len(current) < MIN_GROUP // 2 and len(groups[-1]) + len(current) <= batch_size:
        groups[-1].extend(current)  # a run of one or two rows costs more than its padding
    elif current:
        groups.append(current)
    return groups
