"""Hard-negative verification: reject cached questions that only *look* the same.

``HardNegativeVerifier`` implements ``semcache.verifier.Verifier``. Each rule
family lives in its own module: ``numbers``, ``negation``, ``entities``,
``time``, ``scope``; ``align`` tokenises and lines the questions up; ``lexicon``
holds the shared word lists.
"""

from semcache.verify.hardneg import HardNegativeVerifier

__all__ = ["HardNegativeVerifier"]
