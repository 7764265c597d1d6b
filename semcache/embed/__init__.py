"""Text embedders: the ``Embedder`` protocol (``base``), the MiniLM model on torch or ONNX
(``minilm``, ``onnx``), an LRU in front of any embedder (``lru``) and a micro-batcher that
groups concurrent calls (``microbatch``)."""
