"""Per-category policies: similarity threshold, TTL, quota, enabled, personal, document order.

Policies come from a YAML or TOML file (``semcache/lookup/default_policies.yaml`` when
none is given) and can be overridden per category in the SQL store. A file that
names an unknown category, an unknown field or an out-of-range value raises a
``ConfigError`` (a ``ValueError``) that says what was expected.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from semcache.exceptions import ConfigError
from semcache.lookup.partition import DOCUMENT_ORDERS, DocumentOrder

CATEGORIES: tuple[str, ...] = (
    "code",
    "factual",
    "howto",
    "conversational",
    "time_sensitive",
    "math",
    "support",
    "medical",
    "other",
)

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policies.yaml")


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: float = 0.86
    min_threshold: float = 0.78
    max_threshold: float = 0.99
    ttl_seconds: int | None = 604800
    max_entries: int | None = None  # per tenant: one tenant's stores never evict another's entries
    enabled: bool = True
    personal: bool = False  # answers depend on the user: always user-scoped
    document_order: DocumentOrder = "set"  # "exact": a request's documents count in their order

    def __post_init__(self) -> None:
        for name in ("threshold", "min_threshold", "max_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
            if not 0.0 < float(value) <= 1.0:
                raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
        if not self.min_threshold <= self.threshold <= self.max_threshold:
            raise ConfigError(
                f"need min_threshold <= threshold <= max_threshold, got "
                f"{self.min_threshold} <= {self.threshold} <= {self.max_threshold}"
            )
        for name in ("ttl_seconds", "max_entries"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{name} must be a positive integer or null, got {value!r}")
        for name in ("enabled", "personal"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.document_order not in DOCUMENT_ORDERS:
            raise ConfigError(f"document_order must be one of {list(DOCUMENT_ORDERS)}, "
                              f"got {self.document_order!r}")

    def clamp(self, threshold: float) -> float:
        """Bound a requested threshold to this policy's [min, max]."""
        return min(self.max_threshold, max(self.min_threshold, float(threshold)))

    def replace(self, **changes: Any) -> Policy:
        return _build(dataclasses.asdict(self) | changes, where="policy update")


_FIELDS = {f.name for f in dataclasses.fields(Policy)}


def _build(fields: Mapping[str, Any], *, where: str) -> Policy:
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown policy field(s) {sorted(unknown)}; expected {sorted(_FIELDS)}")
    return Policy(**dict(fields))


class PolicySet:
    """The policies of every category, with file defaults and DB overrides merged."""

    def __init__(
        self,
        categories: Mapping[str, Policy] | None = None,
        *,
        default: Policy | None = None,
    ) -> None:
        self.default = default or Policy()
        self._policies: dict[str, Policy] = {c: self.default for c in CATEGORIES}
        for name, policy in (categories or {}).items():
            _check_category(name)
            self._policies[name] = policy

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> PolicySet:
        """Load a YAML (.yaml/.yml) or TOML (.toml) policy file."""
        path = Path(path) if path is not None else DEFAULT_POLICY_FILE
        if not path.is_file():
            raise ConfigError(f"policy file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot parse policy file {path}: {exc}") from exc
        return cls.from_mapping(data or {}, where=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "policies") -> PolicySet:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'defaults' and 'categories'")
        extra = set(data) - {"defaults", "categories"}
        if extra:
            raise ConfigError(f"{where}: unknown top-level key(s) {sorted(extra)}")
        base = dict(data.get("defaults") or {})
        default = _build(base, where=f"{where}: defaults")
        categories: dict[str, Policy] = {}
        for name, fields in (data.get("categories") or {}).items():
            _check_category(name, where=where)
            if not isinstance(fields, Mapping):
                raise ConfigError(f"{where}: category {name!r} must map to policy fields")
            categories[name] = _build(base | dict(fields), where=f"{where}: {name}")
        return cls(categories, default=default)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "defaults": dataclasses.asdict(self.default),
            "categories": {c: dataclasses.asdict(p) for c, p in self._policies.items()},
        }

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> PolicySet:
        """A new set with DB overrides (category -> changed fields) applied."""
        merged = dict(self._policies)
        for name, fields in overrides.items():
            _check_category(name, where="policy override")
            clean = {k: v for k, v in fields.items() if k in _FIELDS and v is not None}
            merged[name] = merged[name].replace(**clean)
        return PolicySet(merged, default=self.default)

    def get(self, category: str) -> Policy:
        _check_category(category)
        return self._policies[category]

    def __getitem__(self, category: str) -> Policy:
        return self.get(category)

    def items(self) -> list[tuple[str, Policy]]:
        return list(self._policies.items())

    def document_orders(self, n_documents: int) -> tuple[DocumentOrder, ...]:
        """The partitions an exact lookup tries, before its category is known: the documents
        as a set, and in their order too where some category's policy asks for it."""
        if n_documents > 1 and any(p.document_order == "exact" for p in self._policies.values()):
            return ("set", "exact")
        return ("set",)


def _check_category(name: str, *, where: str = "policies") -> None:
    if name not in CATEGORIES:
        raise ConfigError(f"{where}: unknown category {name!r}; expected one of {list(CATEGORIES)}")
