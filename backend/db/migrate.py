"""Run Alembic migrations programmatically (CLI, server start, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from backend.db.session import normalise_database_url

# The migrations ship inside the package; alembic.ini (a checkout's file, for the `alembic` CLI)
# is not needed to run them, so an installed wheel migrates from anywhere.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = normalise_database_url(database_url)
    config.attributes["configure_logger"] = False
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (blocking: call from a thread inside an event loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade_database(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def check_database(database_url: str) -> None:
    """Raise if the ORM models and the migrations disagree (`alembic check`)."""
    command.check(alembic_config(database_url))
