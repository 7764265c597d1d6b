"""One YAML file for the whole proxy: ``semcache serve --config FILE``, ``semcache config check FILE``.

The file has sections; a key inside a section names the setting ``<section>_<key>`` when that
exists (``upstream: {url: ...}`` is ``upstream_url``), else the key itself; ``database.url``
is ``db_url``, ``keys.require`` is ``require_keys`` and ``policies`` may hold the policy file's
content inline. Top-level keys name settings directly. Precedence: flags > ``SEMCACHE_*``
environment > file. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from semcache.adapters.proxy.settings import ProxySettings

ALIASES = {("database", "url"): "db_url", ("keys", "require"): "require_keys",
           ("keys", "insecure_no_keys"): "insecure_no_keys", ("keys", "admin_token"): "admin_token",
           ("keys", "cache_ttl_s"): "key_cache_ttl_s", ("logging", "level"): "log_level",
           ("logging", "format"): "log_format", ("logging", "access_log"): "access_log",
           ("server", "host"): "host", ("server", "port"): "port", ("load", "adaptive"): "load_adaptive",
           ("cache", "sampled"): "cache_sampled", ("cache", "unset_temperature"): "cache_unset_temperature"}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def _field(section: str, key: str) -> str | None:
    fields = ProxySettings.model_fields
    for name in (ALIASES.get((section, key)), f"{section}_{key}", key):
        if name is not None and name in fields:
            return name
    return None


def _inline_policies(content: dict[str, Any], path: Path) -> str:
    fd, name = tempfile.mkstemp(prefix=f"{path.stem}-policies-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(content, fh)
    return name


def read_config(path: Path) -> dict[str, Any]:
    """The settings a config file names, as ``ProxySettings`` field names (ConfigError if wrong)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for section, value in raw.items():
        if section == "policies" and isinstance(value, dict):
            out["policies"] = value.get("file") if set(value) == {"file"} else _inline_policies(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = _field(str(section), str(key))
                if name is None:
                    raise ConfigError(f"{path}: unknown key '{section}.{key}'")
                out[name] = item
        elif str(section) in ProxySettings.model_fields:
            out[str(section)] = value
        else:
            raise ConfigError(f"{path}: unknown key '{section}'")
    return out


def _from_env(name: str, env: dict[str, str]) -> bool:
    return f"SEMCACHE_{name}".upper() in {k.upper() for k in env}


def load_settings(path: Path | None, flags: dict[str, Any], env: dict[str, str] | None = None) -> ProxySettings:
    """Settings from flags, then the environment, then the file (ConfigError with every problem)."""
    env = dict(os.environ) if env is None else env
    from_file = read_config(path) if path is not None else {}
    # a file value gives way to the environment: leave it out and let pydantic read the variable
    merged = {k: v for k, v in from_file.items() if not _from_env(k, env)} | flags
    try:
        return ProxySettings(**merged)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}{problems}") from None
