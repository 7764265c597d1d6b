"""Hard-negative verification: reject cached questions that only *look* the same.

``HardNegativeVerifier`` implements ``semcache.verify.base.Verifier``. Each rule
family lives in its own module: ``numbers``, ``negation``, ``entities``,
``time``, ``quantifiers``; ``align`` tokenises and lines the questions up; ``lexicon``
holds the shared word lists.
"""

from semcache.verify.hardneg import HardNegativeVerifier

__all__ = ["HardNegativeVerifier"]
