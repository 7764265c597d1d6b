"""``SEMCACHE_EMBEDDER`` picks the default embedder that ``build_cache`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from semcache.build import build_cache
from semcache.settings import CoreSettings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("kind", "version_part"), [(None, "onnx-int8"), ("torch", "torch-fp32")])
def test_the_embedder_setting_picks_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             kind: str | None, version_part: str) -> None:
    if kind is not None:
        monkeypatch.setenv("SEMCACHE_EMBEDDER", kind)
    cache = build_cache(CoreSettings(db_url=f"sqlite:///{tmp_path / 'store.db'}"))
    try:
        assert version_part in cache.embedder.version
        assert cache.embedder.embed_one("a question").shape == (384,)
    finally:
        cache.close()


def test_an_unknown_embedder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMCACHE_EMBEDDER", "fp16")
    with pytest.raises(ValueError, match="embedder"):
        CoreSettings()
