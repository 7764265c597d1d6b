"""``CharGramIndex``: a small character n-gram index that finds misspelled repeats.

MiniLM's word pieces break on typos ("how do i rest my pasword" is 0.34 from "How do I
reset my password?"), but most character n-grams survive them. Each question becomes the
set of its hashed 3- and 4-character n-grams (taken inside words padded with spaces); a
search reads the inverted postings of the query's n-grams, shortlists by idf-weighted dot
product and ranks the shortlist by idf cosine. Partitions are kept apart like the vector
index's; it is derived state, rebuilt from the store with it. Costs and recall:
``benchmarks/results/verifier_candidates.json``."""

from __future__ import annotations

import re
import zlib
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

from semcache.index.base import RWLock

_WORD = re.compile(r"[^\W_]+")


def char_grams(text: str, sizes: tuple[int, ...] = (3, 4), bits: int = 18) -> np.ndarray:
    """The distinct hashed n-grams of ``text`` (lower-cased words padded with spaces), int32.
    CRC-32, not ``hash``: the same buckets in every process, so results repeat."""
    mask = (1 << bits) - 1
    grams: set[int] = set()
    for word in _WORD.findall(text.lower()):
        padded = f" {word} "
        for n in sizes:
            # a word shorter than n still counts once, whole
            for i in range(max(1, len(padded) - n + 1)):
                grams.add(zlib.crc32(padded[i:i + n].encode()) & mask)
    return np.fromiter(grams, dtype=np.int32, count=len(grams))


class _Partition:
    """One partition: each row's n-grams (flat, for deletes and norms) and the inverted postings."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.grams = np.zeros(1024, dtype=np.int32)
        self.used = 0  # filled length of grams
        self.row_ids: list[int] = []  # row -> entry id (-1 once deleted)
        self.spans: list[tuple[int, int]] = []  # row -> its slice of grams
        self.row_of: dict[int, int] = {}
        self.postings: dict[int, array[int]] = {}  # n-gram -> rows holding it (dead rows too)
        self.dead = 0

    def append(self, entry_id: int, grams: np.ndarray) -> None:
        need = self.used + len(grams)
        if need > len(self.grams):
            size = max(need, 2 * len(self.grams))
            self.grams = np.resize(self.grams, size)
        row = len(self.row_ids)
        self.grams[self.used:need] = grams
        self.spans.append((self.used, need))
        self.row_ids.append(entry_id)
        self.row_of[entry_id] = row
        self.used = need
        for gram in grams.tolist():
            rows = self.postings.get(gram)
            if rows is None:
                self.postings[gram] = array("i", (row,))
            else:
                rows.append(row)

    def remove(self, entry_id: int) -> np.ndarray:
        row = self.row_of.pop(entry_id)
        start, end = self.spans[row]
        self.row_ids[row] = -1
        self.dead += 1
        return self.grams[start:end].copy()

    def compact(self) -> None:
        live = [(i, self.grams[s:e].copy()) for i, (s, e) in zip(self.row_ids, self.spans, strict=True)
                if i >= 0]
        self.reset()
        for entry_id, grams in live:
            self.append(entry_id, grams)

    def nbytes(self) -> int:
        # numpy buffers, plus about 100 bytes per row of Python bookkeeping (list slots, dict entry)
        postings = sum(64 + 4 * len(rows) for rows in self.postings.values())  # array header + items
        return self.grams.nbytes + postings + 100 * len(self.row_ids)


class CharGramIndex:
    """Partitioned character n-gram search: ``add`` / ``delete`` / ``search`` by entry id.

    ``sizes``: the n-gram lengths; ``bits``: the n-grams are hashed into ``2**bits``
    buckets (document frequencies are one int32 table of that size, shared by all
    partitions). Adding an id that exists replaces it (and moves it between partitions).
    """

    def __init__(self, sizes: tuple[int, ...] = (3, 4), bits: int = 18) -> None:
        if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"sizes must be positive ints, got {sizes!r}")
        if not isinstance(bits, int) or not 8 <= bits <= 24:
            raise ValueError(f"bits must be an int in [8, 24], got {bits!r}")
        self.sizes, self.bits = tuple(sizes), bits
        self._df = np.zeros(1 << bits, dtype=np.int32)
        self._parts: dict[str, _Partition] = {}
        self._where: dict[int, str] = {}
        self._lock = RWLock()

    def grams(self, text: str) -> np.ndarray:
        return char_grams(text, self.sizes, self.bits)

    def add(self, partition: str, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Index ``texts`` under ``ids`` in ``partition``."""
        if not isinstance(partition, str):
            raise TypeError(f"partition must be a str, got {type(partition).__name__}")
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids and {len(texts)} texts")
        encoded = [(int(i), self.grams(t)) for i, t in zip(ids, texts, strict=True)]
        with self._lock.write():
            self._delete_locked(i for i, _ in encoded)
            part = self._parts.setdefault(partition, _Partition())
            for entry_id, grams in encoded:
                part.append(entry_id, grams)
                self._df[grams] += 1
                self._where[entry_id] = partition

    def delete(self, ids: Iterable[int]) -> None:
        """Forget ``ids``; ids it does not hold are ignored."""
        with self._lock.write():
            self._delete_locked(int(i) for i in ids)

    def _delete_locked(self, ids: Iterable[int]) -> None:
        for entry_id in ids:
            name = self._where.pop(entry_id, None)
            if name is None:
                continue
            part = self._parts[name]
            self._df[part.remove(entry_id)] -= 1
            if not part.row_of:
                del self._parts[name]
            elif part.dead > max(64, len(part.row_of)):
                part.compact()

    def search(self, partition: str, text: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` questions of ``partition`` nearest to ``text``: (id, cosine), best first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        query = self.grams(text)
        with self._lock.read():
            part = self._parts.get(partition)
            if part is None or not len(query):
                return []
            n_docs = len(self._where) + 1
            q_idf = np.log(n_docs / (self._df[query] + 1.0)) + 1.0
            lists = [(np.frombuffer(rows, dtype=np.int32), w)
                     for rows, w in ((part.postings.get(g), w) for g, w in zip(
                         query.tolist(), (q_idf ** 2).tolist(), strict=True)) if rows]
            if not lists:
                return []
            rows = np.concatenate([r for r, _ in lists])
            weights = np.concatenate([np.full(len(r), w) for r, w in lists])
            dots = np.bincount(rows, weights=weights, minlength=len(part.row_ids))
            dots[np.asarray(part.row_ids) < 0] = 0.0  # deleted rows wait for compaction
            short = np.flatnonzero(dots)
            short = short[np.argsort(-dots[short])[: 8 * k + 16]]
            # the shortlist, ranked by the exact idf cosine
            spans = [part.spans[r] for r in short.tolist()]
            grams = np.concatenate([part.grams[a:b] for a, b in spans])
            d_idf2 = (np.log(n_docs / (self._df[grams] + 1.0)) + 1.0) ** 2
            starts = np.cumsum([0] + [b - a for a, b in spans[:-1]])
            norms = np.sqrt(np.add.reduceat(d_idf2, starts) * float((q_idf ** 2).sum()))
            scores = dots[short] / norms
            top = np.argsort(-scores, kind="stable")[:k]
            return [(part.row_ids[short[j]], float(scores[j])) for j in top.tolist()]

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._where

    def partitions(self) -> list[str]:
        with self._lock.read():
            return sorted(self._parts)

    def nbytes(self) -> int:
        """Approximate memory held: the frequency table and every partition's postings."""
        with self._lock.read():
            return self._df.nbytes + sum(p.nbytes() for p in self._parts.values())
