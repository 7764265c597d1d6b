"""Chunk-level KV reuse: kernels, chunk KV store, blend pipeline and engine.

Installed as ``semcache.gpu``. Needs only torch, triton and transformers; it
must never import SQLAlchemy, FastAPI or sentence-transformers.
"""
