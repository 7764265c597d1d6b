"""The rule-based verifier the rule tests share (one per test module)."""

import pytest

from semcache.verify import HardNegativeVerifier


@pytest.fixture(scope="module")
def verifier() -> HardNegativeVerifier:
    return HardNegativeVerifier()
