"""Choosing the learned verifier: ``SEMCACHE_VERIFIER``, the YAML config, the candidate floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from semcache.adapters.proxy.config import ConfigError, load_settings

from semcache.build import _from_settings
from semcache.parts import make_verifier
from semcache.settings import CoreSettings
from semcache.verify import HardNegativeVerifier
from semcache.verify.base import PassThroughVerifier
from semcache.verify.learned import LearnedVerifier

pytestmark = pytest.mark.unit


def test_environment_selects_the_learned_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoreSettings().verifier == "hardneg"  # the default stays the rule verifier
    monkeypatch.setenv("SEMCACHE_VERIFIER", "learned")
    monkeypatch.setenv("SEMCACHE_CANDIDATE_FLOOR", "0.35")
    monkeypatch.setenv("SEMCACHE_VERIFIER_RULES", "false")
    args = _from_settings(CoreSettings(), {})
    assert isinstance(args["verifier"], LearnedVerifier) and not args["verifier"].rules
    assert args["candidate_floor"] == 0.35


def test_yaml_config_accepts_learned(tmp_path: Path) -> None:
    path = tmp_path / "semcache.yaml"
    path.write_text("upstream: {url: 'http://u'}\nverifier: learned\ncandidate_floor: 0.45\n")
    settings = load_settings(path, {}, env={})
    assert (settings.verifier, settings.candidate_floor, settings.verifier_rules) == ("learned", 0.45, True)
    path.write_text("upstream: {url: 'http://u'}\nverifier: oracle\n")
    with pytest.raises(ConfigError, match="verifier"):
        load_settings(path, {}, env={})


def test_floor_is_bounded() -> None:
    with pytest.raises(ValidationError):
        CoreSettings(candidate_floor=1.5)


def test_make_verifier_kinds() -> None:
    assert isinstance(make_verifier("hardneg"), HardNegativeVerifier)
    assert isinstance(make_verifier("none"), PassThroughVerifier)
    learned = make_verifier("learned", rules=False)
    assert isinstance(learned, LearnedVerifier) and not learned.rules and learned._model is not None  # noqa: SLF001
    with pytest.raises(ValueError, match="oracle"):
        make_verifier("oracle")
