"""Chunks: ids and detection in a prompt (``ids``), the tiered chunk KV store (``store``), its
shared Redis tier (``redis_tier``) and the anchor a chunk is encoded after (``anchor``)."""
