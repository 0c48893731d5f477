"""Alembic environment: run migrations on the connection the store hands over."""

from alembic import context

from alerts.store.schema import metadata

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
