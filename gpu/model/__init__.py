"""The model side: loading HF Llama-family models (``loader``), the layer-by-layer runner with
its own KV tensors (``runner``), RoPE (``rope``) and the CPU linear maps (``linear``)."""
