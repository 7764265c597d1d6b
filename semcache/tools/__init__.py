"""Offline tools on labelled pairs: ``evaluate`` judges hit/miss decisions through the
production lookup path; ``calibrate`` derives per-category thresholds from them."""
