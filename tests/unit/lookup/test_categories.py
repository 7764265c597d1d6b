import numpy as np
import pytest

from semcache.lookup.categories import SEEDS, Categoriser
from semcache.lookup.policies import CATEGORIES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, expected", [
    ("How do I reverse a list in Python?", "code"),
    ("Why does my_function() raise a KeyError", "code"),
    ("What is the max dose of ibuprofen, 400 mg?", "medical"),
    ("What's the weather in Oslo today?", "time_sensitive"),
    ("What is 17 * 23?", "math"),
])
def test_rules_catch_unambiguous_signals(text, expected):
    assert Categoriser().rule_category(text) == expected


def test_without_embedder_unmatched_text_is_other():
    assert Categoriser().categorise("tell me something nice") == "other"


def test_nearest_centroid_with_an_injected_embedding():
    # One-hot "embedding" per seed category: a question embedded like the support
    # seeds must land in support.
    names = list(SEEDS)

    def embed(texts):
        rows = []
        for t in texts:
            v = np.zeros(len(names) + 1, dtype=np.float32)
            owner = next((i for i, n in enumerate(names) if t in SEEDS[n]), len(names))
            v[owner] = 1.0
            rows.append(v)
        return np.stack(rows)

    cat = Categoriser(embed)
    support = np.zeros(len(names) + 1, dtype=np.float32)
    support[names.index("support")] = 1.0
    assert cat.categorise("my parcel never came", support) == "support"
    nowhere = np.zeros(len(names) + 1, dtype=np.float32)
    nowhere[-1] = 1.0
    assert cat.categorise("zzz", nowhere) == "other"
    assert set(SEEDS) <= set(CATEGORIES)
