"""Model directories on disk: numpy arrays only (no pickle), every file checked by SHA-256.

A model directory holds
  model.npz      vocabularies, idf, coefficients, calibration, classes (np.load allow_pickle=False)
  taxonomy.json  the category tree used for second/third-level suggestions
  userdict.txt   the jieba user dictionary and
  stopwords.txt  the stop words the features were built with
  jieba_dict.txt jieba's dictionary trimmed to the corpora's words (text.read_dictionary); models
                 from before it have none and segment with jieba's full dictionary
  manifest.json  what it is: classes, SHA-256 of each file above, training data, metrics, versions
The zip inside model.npz is written with fixed timestamps, so the same training run gives the
same bytes, hence the same hash and model version.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier.errors import ArtifactError

FORMAT = "hotline-classifier/1"
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
REQUIRED_FILES = (MODEL_FILE, "taxonomy.json", "userdict.txt", "stopwords.txt")
DICTIONARY_FILE = "jieba_dict.txt"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_strings(items: list[str]) -> npt.NDArray[np.uint8]:
    for item in items:
        if "\n" in item:
            raise ValueError(f"string with a newline cannot be stored: {item!r}")
    return np.frombuffer("\n".join(items).encode("utf-8"), dtype=np.uint8)


def decode_strings(array: npt.NDArray[Any]) -> list[str]:
    text = bytes(np.asarray(array, dtype=np.uint8)).decode("utf-8")
    return text.split("\n") if text else []


def encode_json(data: Mapping[str, Any]) -> npt.NDArray[np.uint8]:
    return np.frombuffer(json.dumps(data, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def decode_json(array: npt.NDArray[Any]) -> dict[str, Any]:
    data = json.loads(bytes(np.asarray(array, dtype=np.uint8)).decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("meta is not an object")
    return data


def write_npz(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """np.savez_compressed, but byte-for-byte reproducible (fixed order and timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def write_model_dir(
    out_dir: Path,
    arrays: Mapping[str, npt.NDArray[Any]],
    manifest: dict[str, Any],
    files: Mapping[str, bytes],
) -> dict[str, Any]:
    """Write a complete model directory; it appears under `out_dir` only once fully written."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_npz(staging / MODEL_FILE, arrays)
        for name, content in files.items():
            (staging / name).write_bytes(content)
        hashes = {name: sha256_file(staging / name) for name in sorted([MODEL_FILE, *files])}
        manifest = {
            **manifest,
            "format": FORMAT,
            "version": "clf-" + hashes[MODEL_FILE][:12],
            "files": hashes,
        }
        (staging / MANIFEST_FILE).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        os.chmod(staging, 0o755)
        if out_dir.exists():
            _replace_dir(staging, out_dir)
        else:
            os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _replace_dir(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ArtifactError(f"找不到模型目录: {model_dir}")
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"模型目录 {model_dir} 缺少 {MANIFEST_FILE}，不是本项目训练的模型")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"无法读取 {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path} 不是受支持的模型格式（需要 {FORMAT}）")
    return manifest


def verify_files(model_dir: Path, manifest: dict[str, Any], expected_sha256: str | None) -> None:
    """Every file the manifest lists has its recorded SHA-256; the model file the pinned one."""
    files = manifest.get("files")
    if not isinstance(files, dict) or any(name not in files for name in REQUIRED_FILES):
        raise ArtifactError(f"模型目录 {model_dir} 的 manifest.json 缺少文件校验值")
    for name, recorded in files.items():
        if Path(name).name != name:
            raise ArtifactError(f"manifest.json 中的文件名不合法: {name}")
        path = model_dir / name
        if not path.is_file():
            raise ArtifactError(f"模型目录 {model_dir} 缺少文件 {name}")
        actual = sha256_file(path)
        if actual != recorded:
            raise ArtifactError(
                f"模型文件 {path} 的 SHA-256 与 manifest.json 记录的不一致，拒绝加载"
                f"（文件可能被篡改或损坏）"
            )
    if expected_sha256 and files[MODEL_FILE] != expected_sha256.lower():
        raise ArtifactError(
            f"模型文件 {model_dir / MODEL_FILE} 的 SHA-256 ({files[MODEL_FILE][:12]}…) "
            f"不是配置中固定的值 ({expected_sha256[:12]}…)，拒绝加载"
        )


def read_arrays(model_dir: Path) -> dict[str, npt.NDArray[Any]]:
    """The arrays of model.npz; object arrays (which would need pickle) are refused."""
    path = model_dir / MODEL_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"无法读取模型文件 {path}: {exc}") from exc
