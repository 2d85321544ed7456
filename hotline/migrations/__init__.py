"""Schema migrations (alembic); `hotline db upgrade` or start-up runs them."""
