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
#: The shipped family. Ridge (squared loss) and svc (squared hinge) are tied on CV; on the
#: raw-text evaluation ridge got 8 held-out messages right that svc missed, and svc 2
#: (bench/classifier.py, classifier/README.md): a small edge, taken.
DEFAULT_FAMILY = "ridge"
