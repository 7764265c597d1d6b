import pytest

from semcache.exceptions import ConfigError
from semcache.lookup.policies import CATEGORIES, Policy, PolicySet

pytestmark = pytest.mark.unit


def test_default_file_covers_every_category_and_code_is_stricter_than_chat():
    ps = PolicySet.from_file()
    assert {name for name, _ in ps.items()} == set(CATEGORIES)
    assert ps["code"].threshold > ps["conversational"].threshold
    assert ps["time_sensitive"].ttl_seconds is not None
    assert ps["time_sensitive"].ttl_seconds < ps["factual"].ttl_seconds


def test_yaml_and_toml_load_the_same(tmp_path):
    (tmp_path / "p.yaml").write_text("defaults: {threshold: 0.9}\ncategories:\n  code: {threshold: 0.95}\n")
    (tmp_path / "p.toml").write_text("[defaults]\nthreshold = 0.9\n[categories.code]\nthreshold = 0.95\n")
    a, b = PolicySet.from_file(tmp_path / "p.yaml"), PolicySet.from_file(tmp_path / "p.toml")
    assert a["code"].threshold == b["code"].threshold == 0.95
    assert a["math"].threshold == b["math"].threshold == 0.9


@pytest.mark.parametrize(
    "text, message",
    [
        ("categories:\n  poetry: {threshold: 0.9}\n", "unknown category 'poetry'"),
        ("categories:\n  code: {treshold: 0.9}\n", "unknown policy field"),
        ("categories:\n  code: {threshold: 1.5}\n", "threshold must be in"),
        ("categories:\n  code: {ttl_seconds: -1}\n", "ttl_seconds must be a positive integer"),
        ("categories:\n  code: {enabled: 'yes'}\n", "enabled must be true or false"),
        ("colours: {}\n", "unknown top-level key"),
    ],
)
def test_bad_policy_files_raise_clear_value_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        PolicySet.from_file(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        PolicySet.from_file(tmp_path / "nope.yaml")


def test_overrides_apply_on_top_and_clamp_bounds_requests():
    ps = PolicySet.from_file().with_overrides({"code": {"threshold": 0.97, "enabled": False}})
    assert ps["code"].threshold == 0.97 and ps["code"].enabled is False
    p = Policy(threshold=0.86, min_threshold=0.8, max_threshold=0.95)
    assert p.clamp(0.5) == 0.8 and p.clamp(0.99) == 0.95 and p.clamp(0.9) == 0.9
    with pytest.raises(ConfigError, match="unknown category"):
        ps.with_overrides({"nope": {"threshold": 0.9}})
