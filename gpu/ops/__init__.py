"""The blend's ops, one folder each: ``triton.py`` (kernel and launcher), ``reference.py`` (pure
torch, the ground truth) and, where one exists, ``cpu.py`` (a faster torch form for CPUs).
``dispatch`` chooses among them per call (``impl``); callers import it as ``ops``."""
