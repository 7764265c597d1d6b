"""Chunk-level KV reuse: kernels, chunk KV store, blend pipeline and engine.

Installed as ``semcache.gpu``. Needs only torch, triton and transformers; it
must never import SQLAlchemy, FastAPI or sentence-transformers.
"""

from importlib.util import find_spec

if find_spec("torch") is None:  # every module here needs it; say which extra brings it
    raise ModuleNotFoundError("torch is required for semcache.gpu: pip install 'semcache[gpu]'",
                              name="torch")
