"""The categoriser: rules first, then the nearest centroid of seed examples.

Rules catch the unambiguous signals (code fences and identifiers, arithmetic,
dosages, "today"/"latest"); everything else goes to the category whose seed
centroid is closest to the question's embedding. The embedding is the one the
lookup computes anyway, so categorising costs a 9x384 dot product.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from semcache.lookup.policies import CATEGORIES

SEEDS: Mapping[str, Sequence[str]] = {
    "code": (
        "How do I reverse a list in Python?",
        "Why does my JavaScript promise never resolve?",
        "Write a SQL query that joins two tables on user id",
        "What does this Rust borrow checker error mean?",
        "How to read a file line by line in Go",
        "Fix the TypeError in my function",
    ),
    "factual": (
        "What is the capital of Australia?",
        "Who wrote Pride and Prejudice?",
        "How tall is Mount Everest?",
        "When did the Roman Empire fall?",
        "What is the boiling point of water at sea level?",
    ),
    "howto": (
        "How do I change a flat tire?",
        "How can I reset my router to factory settings?",
        "Steps to bake sourdough bread at home",
        "How to set up two-factor authentication",
        "How do I clean a cast iron pan?",
    ),
    "conversational": (
        "Hi, how are you doing today?",
        "Tell me a joke",
        "Thanks, that was helpful!",
        "What do you like to do for fun?",
        "Can you recommend a good movie?",
    ),
    "time_sensitive": (
        "What is the weather in Paris today?",
        "What is the latest news about the election?",
        "What is the current price of bitcoin?",
        "Who won the game last night?",
        "What time does the store open tomorrow?",
    ),
    "math": (
        "What is 17 times 23?",
        "Solve for x: 2x + 5 = 13",
        "What is the derivative of x squared?",
        "Compute the integral of sin x from 0 to pi",
        "What is the square root of 144?",
    ),
    "support": (
        "I can't log in to my account",
        "How do I cancel my subscription?",
        "My order hasn't arrived yet",
        "I was charged twice for the same purchase",
        "How do I get a refund?",
    ),
    "medical": (
        "What is the normal dose of ibuprofen for adults?",
        "What are the symptoms of diabetes?",
        "Can I take aspirin with blood thinners?",
        "Is a fever of 39 degrees dangerous?",
        "What are the side effects of metformin?",
    ),
}

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("code", re.compile(r"```|\b(def|class|import|lambda|regex|stack ?trace|traceback|segfault|compile[rs]?|"
                        r"python|javascript|typescript|java|golang|rust|c\+\+|sql|bash|numpy|pandas|"
                        r"kubernetes|docker|git|api|json|function|variable|exception|null pointer)\b|"
                        r"\w+\(\)|\w+\.\w+\(", re.I)),
    ("medical", re.compile(r"\b\d+(\.\d+)?\s?(mg|mcg|ml|iu)\b|\b(dose|dosage|symptom|side effects?|"
                           r"diagnos\w*|prescri\w*|ibuprofen|aspirin|paracetamol|acetaminophen|"
                           r"insulin|antibiotic\w*|blood pressure|fever|pregnan\w*)\b", re.I)),
    ("time_sensitive", re.compile(r"\b(today|tonight|tomorrow|yesterday|right now|currently|latest|"
                                  r"this (week|month|year|morning|evening)|last (night|week)|"
                                  r"current(ly)? (price|weather|score|news)|news|weather|stock price)\b", re.I)),
    ("math", re.compile(r"\d\s*[-+*/^×÷]\s*\d|\b(solve|integral|derivative|equation|factorial|"
                        r"square root|prime number|probability|sum of|percent of)\b", re.I)),
)

EmbedFn = Callable[[Sequence[str]], np.ndarray]


class Categoriser:
    """Assigns one of ``CATEGORIES`` to a question."""

    def __init__(self, embed: EmbedFn | None = None, seeds: Mapping[str, Sequence[str]] = SEEDS,
                 min_similarity: float = 0.25) -> None:
        self._embed = embed
        self._seeds = seeds
        self._min_similarity = min_similarity
        self._names: list[str] = []
        self._centroids: np.ndarray | None = None

    def _ensure_centroids(self) -> np.ndarray | None:
        if self._centroids is None and self._embed is not None:
            names, rows = [], []
            for name, examples in self._seeds.items():
                vecs = np.asarray(self._embed(list(examples)), dtype=np.float32)
                centroid = vecs.mean(axis=0)
                rows.append(centroid / (np.linalg.norm(centroid) + 1e-12))
                names.append(name)
            self._names, self._centroids = names, np.stack(rows)
        return self._centroids

    def rule_category(self, text: str) -> str | None:
        for name, pattern in _RULES:
            if pattern.search(text):
                return name
        return None

    def categorise(self, text: str, vector: np.ndarray | None = None) -> str:
        """Rules first; then the nearest seed centroid; ``other`` when nothing is close."""
        by_rule = self.rule_category(text)
        if by_rule is not None:
            return by_rule
        centroids = self._ensure_centroids()
        if centroids is None:
            return "other"
        if vector is None:
            assert self._embed is not None
            vector = np.asarray(self._embed([text]), dtype=np.float32)[0]
        sims = centroids @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(sims))
        if float(sims[best]) < self._min_similarity:
            return "other"
        name = self._names[best]
        assert name in CATEGORIES
        return name
