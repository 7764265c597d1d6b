"""Quality gate: ratio choice, the gate file, enforcement, and the calibration prompt set."""

from __future__ import annotations

from pathlib import Path

import pytest
from semcache.gpu.engine.calibrate import calibration_prompts
from semcache.gpu.engine.quality_gate import QualityGate, pick_ratio

pytestmark = pytest.mark.unit

DESIGN = {"check_layer": 1, "score": "kv", "boundary_tokens": 0}


def test_pick_smallest_ratio_meeting_the_floor() -> None:
    agreement = {0.0: 0.80, 0.05: 0.93, 0.15: 0.951, 0.3: 0.97, 1.0: 1.0}
    assert pick_ratio(agreement, 0.95) == (0.15, True)
    assert pick_ratio(agreement, 0.90) == (0.05, True)
    assert pick_ratio({0.0: 0.8, 0.3: 0.9}, 0.95) == (1.0, False)
    with pytest.raises(ValueError):
        pick_ratio({}, 0.95)


def test_gate_file_roundtrip_and_enforcement(tmp_path: Path) -> None:
    gate = QualityGate(model="smollm2", ratio=0.15, floor=0.95, met=True, design=DESIGN,
                       agreement={"0.15": 0.96}, kl={"0.15": 0.01}, prompts=3, new_tokens=32)
    path = tmp_path / "sub" / "gate.json"
    gate.save(path)
    loaded = QualityGate.load(path)
    assert loaded == gate
    loaded.check(0.15)
    loaded.check(1.0)
    with pytest.raises(ValueError, match="below the quality gate"):
        loaded.check(0.1)
    loaded.check_design("smollm2", dict(DESIGN))
    with pytest.raises(ValueError, match="model"):
        loaded.check_design("other", DESIGN)
    with pytest.raises(ValueError, match="blend settings"):
        loaded.check_design("smollm2", {**DESIGN, "check_layer": 2})


def test_malformed_gate_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="malformed"):
        QualityGate.load(bad)
    bad.write_text('{"model": "m"}')
    with pytest.raises(ValueError, match="malformed"):
        QualityGate.load(bad)
    with pytest.raises(ValueError, match="ratio"):
        QualityGate(model="m", ratio=1.5, floor=0.9, met=True, design=DESIGN)


def test_calibration_prompts_are_real_text_and_deterministic() -> None:
    a = calibration_prompts(5, chunks_per_prompt=4, seed=3)
    assert a == calibration_prompts(5, chunks_per_prompt=4, seed=3)
    assert a != calibration_prompts(5, chunks_per_prompt=4, seed=4)
    for prompt in a:
        assert len(prompt.chunks) == len(set(prompt.chunks)) == 4
        topic = prompt.question.split('"')[1]
        quoted = prompt.question.split('"')[3]
        # the question points at one chunk of the prompt and quotes its text
        assert [c for c in prompt.chunks if c.startswith(f'Document "{topic}"')]
        assert any(quoted in c for c in prompt.chunks)
