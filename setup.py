"""Maps the top-level folders adapters/, gpu/ and alembic/ into the semcache namespace.

The repo keeps the architecture visible (semcache/, adapters/, gpu/ side by
side), while the installed import names stay unambiguous: semcache.adapters.*,
semcache.gpu.* and semcache.migrations (the schema migrations, found by
semcache.storage.engine through the package path). Metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {"semcache": "semcache", "semcache.adapters": "adapters", "semcache.gpu": "gpu",
           "semcache.migrations": "alembic"}

packages: list[str] = []
for prefix, folder in FOLDERS.items():
    packages.append(prefix)
    packages += [f"{prefix}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=FOLDERS)
