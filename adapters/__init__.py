"""The ways in: ``proxy`` (OpenAI-compatible), ``langchain`` and ``admin``.

Installed as ``semcache.adapters``; each subpackage needs its extra.
"""
