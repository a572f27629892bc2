"""Alembic environment: always run with a connection handed over by ``switchboard.db``."""

from alembic import context

from switchboard.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guarded for people who run `alembic` by hand
    raise RuntimeError("run migrations with `switchboard db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
