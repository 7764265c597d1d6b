"""The blend: a prefill that reuses cached chunk KV and recomputes a share of chunk tokens.

``plan`` (host bookkeeping), ``select`` (scores per token), ``execute`` (the passes over the fused
KV), ``fused_kv`` (cached KV placed at its new rows), ``graphs`` (the query pass as CUDA graphs),
``encoder`` (chunk KV computed once) and ``blender`` (``Blender``, which ties them together).
"""

from semcache.gpu.blend.blender import Blender, BlendResult, BlendStats
from semcache.gpu.blend.config import BlendConfig, blend_design, default_check_layer
from semcache.gpu.blend.encoder import ChunkEncoder
from semcache.gpu.blend.execute import LayerAttention

__all__ = ["BlendConfig", "BlendResult", "BlendStats", "Blender", "ChunkEncoder", "LayerAttention",
           "blend_design", "default_check_layer"]
