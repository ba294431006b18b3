"""Package layout that pyproject.toml cannot express: the models ship inside the wheel.

`models/` (weights, tokenizer, metadata) stays at the top of a checkout, where training writes it,
and is installed as `backend/_models/`, which `backend.config.default_models_dir()` finds first.
Everything else (metadata, dependencies, which files ship) is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["backend*", "training*"]), "backend._models"],
    package_dir={"backend._models": "models"},
)
