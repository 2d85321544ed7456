"""Composition root: configuration, the `hotline` CLI, app wiring, event bus."""
