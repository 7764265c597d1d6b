"""Exceptions raised by semcache.

    SemcacheError
    ├── ConfigError (also ValueError)      bad settings, policy files, unknown categories
    ├── StoreError                         the SQL store failed or is unreachable
    │   └── StoreUnavailable (also ValueError)  cannot connect to the database URL
    ├── EmbedderError                      the embedding model failed to load or run
    └── MissingExtraError (also ImportError) an optional dependency is not installed

Bad arguments raise ``ValueError``/``TypeError``; ``SemcacheWarning`` is our warnings' base."""

from __future__ import annotations


class SemcacheError(Exception):
    """Base class for semcache errors."""


class ConfigError(SemcacheError, ValueError):
    """Invalid configuration: settings, policy files, unknown categories."""


class StoreError(SemcacheError):
    """The SQL store failed."""


class StoreUnavailable(StoreError, ValueError):
    """The database URL cannot be reached or opened."""


class EmbedderError(SemcacheError):
    """The embedding model could not be loaded or run."""


class MissingExtraError(SemcacheError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature: pip install 'semcache[{extra}]'"
        )
        self.package = package
        self.extra = extra


class SemcacheWarning(UserWarning):
    """Base class for semcache's own warnings."""
