"""Defaults shared by the classifier's modules and its CLI (cheap to import: no numpy)."""

from __future__ import annotations

from pathlib import Path

#: The shipped model directory (`make model` rebuilds it).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "model"
#: Seed of every random choice in training (splits, liblinear, calibration folds).
DEFAULT_SEED = 20240612
DEFAULT_LABEL_COLUMN = "label"
#: Model families the bench compares; all but "cnb" can be exported and shipped.
FAMILIES = ("svc", "lr", "sgd", "ridge", "cnb")
EXPORTABLE = ("svc", "lr", "sgd", "ridge")
