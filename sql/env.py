"""Alembic's environment for the rewards schema; rewards/migrations.py does the work.

Run three ways, with the same checks: by `rewards migrate` (and `serve`, and the app at
start), which passes its connection and already holds the migration lock; by the `alembic`
command line, which connects to the service's database (DATABASE_URL, or the embedded one)
and takes the lock; and offline (`alembic upgrade head --sql`), which writes the SQL out.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from rewards import migrations
from rewards.tables import metadata

config = context.config
if config.config_file_name is not None:  # the command line: alembic.ini's logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)
scripts = ScriptDirectory.from_config(config)


def run(connection: Connection) -> None:
    migrations.prepare(connection, scripts)
    context.configure(
        connection=connection, **migrations.configure_options(scripts, config.attributes.get("applied"), metadata)
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    # no database to check digests against: they are recorded when `rewards migrate` next runs
    # named paramstyle: a % in the SQL (plpgsql's RAISE) is written as it is, not doubled
    context.configure(dialect_name="postgresql", dialect_opts={"paramstyle": "named"}, target_metadata=metadata,
                      literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
elif "connection" in config.attributes:
    run(config.attributes["connection"])
else:
    asyncio.run(migrations.run_locked(migrations.command_line_url(), run))
