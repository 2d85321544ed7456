"""Errors a user can fix, with Chinese messages; importing this module costs nothing."""

from __future__ import annotations


class ClassifierError(Exception):
    """Base: the message is Chinese and says which file or directory is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DataError(ClassifierError):
    """Unusable training or evaluation data (missing file, wrong columns, no rows …)."""


class ArtifactError(ClassifierError):
    """A model directory that must not or cannot be loaded (tampered, incomplete, foreign)."""
