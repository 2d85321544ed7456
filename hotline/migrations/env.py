"""Alembic environment: runs on the connection the caller passes in config.attributes."""

from __future__ import annotations

from alembic import context

import telephony.tables  # noqa: F401 - the calls table joins the shared metadata
import tickets.cases_tables  # the public cases join the shared metadata
import tickets.stats_tables  # noqa: F401 - the statistics tables join the shared metadata
from agent_ui.tables import metadata as accounts_metadata
from tickets.tables import metadata as tickets_metadata

target_metadata = [tickets_metadata, accounts_metadata]
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata)
with context.begin_transaction():
    context.run_migrations()
