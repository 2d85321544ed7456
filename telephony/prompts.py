"""IVR prompt library: Mandarin WAVs from espeak-ng, synthesized tones, Mongolian fallback."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import numpy.typing as npt

from telephony.config import TelephonySettings
from tickets.model import STATUS_LABELS, Status

log = logging.getLogger(__name__)

RATE = 16000
FORMAT = "wav/pcm_s16le/mono/16000"
# `-v cmn` reads the pinyin it derives from Hanzi with English rules ("nin2" → "nint u:");
# only the pinyin voice pronounces Chinese characters as Mandarin with tones.
VOICE = "cmn-latn-pinyin"
SPEED_WPM = 150  # a little slower than espeak's 175: phone lines and older callers
# Bump when the processing below changes, so every file is rebuilt once.
PIPELINE = "1"
ESPEAK_TIMEOUT_S = 30
PEAK = 10 ** (-3 / 20)  # -3 dBFS
KEEP_S = 0.1  # silence kept around trimmed speech
MN_RATES = (8000, 16000, 32000, 44100, 48000)
DIGITS_CN = "零一二三四五六七八九"
# Language-neutral files: never looked for under mn/, never reported missing there.
NEUTRAL = ("beep", "moh", "silence_500ms")

MISSING = "缺失"

Samples = npt.NDArray[np.float64]
T = TypeVar("T")


class PromptError(RuntimeError):
    """A prompt cannot be generated or found."""


@dataclass
class BuildReport:
    generated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    espeak_version: str = ""
    placeholders: bool = False


def speech_texts(settings: TelephonySettings) -> dict[str, str]:
    """Key → Mandarin text for every spoken prompt: settings, digits, work-order statuses."""
    digit = {f"digit_{d}": DIGITS_CN[d] for d in range(10)}
    return {**settings.prompts, **digit, **{f"status_{s}": STATUS_LABELS[s] for s in Status}}


def needed_keys(settings: TelephonySettings) -> list[str]:
    return [*speech_texts(settings), *NEUTRAL]


def status_readout(number: str, status_value: str) -> list[str]:
    """Keys the IVR plays after a status lookup (`number` is kept for a future read-back)."""
    del number
    if status_value not in set(Status):
        raise ValueError(f"未知的工单状态: {status_value!r}")
    return ["status_is", f"status_{status_value}"]


def digits(number: str) -> list[str]:
    if not number.isascii() or not number.isdigit():
        raise ValueError(f"号码只能包含数字: {number!r}")
    return [f"digit_{c}" for c in number]


def spoken_text(text: str) -> str:
    # espeak reads "12345" as 一万二千三百四十五; hotline numbers are read digit by digit,
    # while short counts such as "14位" stay numbers.
    return re.sub(r"\d{3,}", lambda m: "".join(DIGITS_CN[int(c)] for c in m.group()), text)


def read_wav(path: Path) -> tuple[Samples, int]:
    """Mono 16-bit WAV → float samples in [-1, 1] and the sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getcomptype() != "NONE":
            raise PromptError(f"{path.name} 不是单声道 16 位 PCM WAV")
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0, rate


def resample(x: Samples, rate: int) -> Samples:
    if rate == RATE:
        return x
    g = math.gcd(rate, RATE)
    # imported here: SIP workers load this module to play prompts and must stay small (scipy
    # adds ~80 MB to each of them); only building prompts resamples
    from scipy.signal import resample_poly

    return np.asarray(resample_poly(x, RATE // g, rate // g), dtype=np.float64)


@contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    # Worker processes may be playing the old file: readers see it whole or the new one whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_wav(path: Path, x: Samples) -> float:
    with _atomic(path) as f, wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(x, -1.0, 32767 / 32768) * 32768).round().astype("<i2").tobytes())
    return len(x) / RATE


def trim_normalise(x: Samples, peak: float = PEAK) -> Samples:
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    if top < 1e-4:
        raise PromptError("语音为空（全是静音）")
    loud = np.flatnonzero(np.abs(x) > top * 0.02)  # -34 dB below the peak counts as silence
    keep = int(KEEP_S * RATE)
    start, end = max(0, loud[0] - keep), min(len(x), loud[-1] + 1 + keep)
    # espeak often starts speaking on the first sample; pad so every prompt has its ~100 ms.
    lead, tail = np.zeros(keep - (loud[0] - start)), np.zeros(keep - (end - loud[-1] - 1))
    return np.concatenate([lead, x[start:end] * (peak / top), tail])


def _fade(x: Samples, seconds: float) -> Samples:
    n = min(int(seconds * RATE), len(x) // 2)
    ramp = np.linspace(0.0, 1.0, n)
    x = x.copy()
    x[:n] *= ramp
    x[len(x) - n :] *= ramp[::-1]
    return x


def tone(freq: float, seconds: float, level: float = 0.5) -> Samples:
    t = np.arange(int(seconds * RATE)) / RATE
    return _fade(level * np.sin(2 * np.pi * freq * t), 0.01)


def silence(seconds: float) -> Samples:
    return np.zeros(int(seconds * RATE))


def music_on_hold(seconds: float = 20.0) -> Samples:
    """A slow pentatonic melody over soft chords: sine notes with bell-like decays."""
    t_note = 0.5
    melody = [0, 2, 4, 7, 9, 7, 4, 2, 0, 4, 7, 12, 9, 7, 4, 2, 4, 2, 0, -3]  # semitones from C5
    chords = [(-12, -5, -8), (-15, -8, -3), (-19, -12, -7), (-17, -10, -5)]  # C, Am, F, G
    out = silence(seconds + 2.0)
    t = np.arange(int(2.0 * RATE)) / RATE

    def note(start: float, semis: float, level: float, decay: float) -> None:
        f = 523.25 * 2 ** (semis / 12)
        env = np.minimum(t / 0.04, 1.0) * np.exp(-t / decay)  # soft attack, long release
        wave_ = np.sin(2 * np.pi * f * t) + 0.15 * np.sin(4 * np.pi * f * t)
        i = int(start * RATE)
        out[i : i + len(t)] += level * env * wave_

    for i in range(int(seconds / t_note)):
        note(i * t_note, melody[i % len(melody)], 0.25, 0.45)
        if i % 4 == 0:
            for semis in chords[(i // 4) % len(chords)]:
                note(i * t_note, semis, 0.08, 0.9)
    out = out[: int(seconds * RATE)]
    # Gentle level (-9 dBFS) and faded ends so the loop restarts without a click.
    return _fade(out / np.max(np.abs(out)) * 10 ** (-9 / 20), 0.5)


def placeholder(key: str) -> Samples:
    """Tone stand-in for a spoken prompt: digits pip their value (0 = one long), others chime."""
    if key.startswith("digit_"):
        d = int(key[-1])
        pips = [tone(880, 0.6)] if d == 0 else [tone(880, 0.12) for _ in range(d)]
        parts = [p for pip in pips for p in (pip, silence(0.1))]
    else:
        parts = [tone(660, 0.2), silence(0.05), tone(880, 0.3)]
    return np.concatenate([silence(0.1), *parts, silence(0.1)])


SYNTH: dict[str, Callable[[], Samples]] = {
    "beep": lambda: tone(1000, 0.4, 10 ** (-6 / 20)),
    "moh": music_on_hold,
    "silence_500ms": lambda: silence(0.5),
}


def espeak_version(espeak: str = "espeak-ng") -> str:
    exe = shutil.which(espeak)
    if exe is None:
        raise PromptError(
            f"找不到 espeak-ng（{espeak}），无法生成语音提示。请先安装：apt-get install espeak-ng；"
            "或用 build_placeholder_prompts 生成提示音占位文件"
        )
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, timeout=ESPEAK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PromptError(f"无法运行 espeak-ng（{exe}）：{e}") from e
    m = re.search(rb"text-to-speech:\s*(\S+)", out.stdout)
    if out.returncode != 0 or m is None:
        raise PromptError(f"espeak-ng 版本检查失败（退出码 {out.returncode}）")
    return m.group(1).decode()


def synthesize(key: str, text: str, espeak: str = "espeak-ng") -> Samples:
    """Speak `text` with espeak-ng, resample to 16 kHz, trim and normalise."""
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        out = Path(tmp) / "out.wav"
        # Text goes through stdin so a prompt starting with "-" is never taken as an option.
        cmd = [espeak, "-v", VOICE, "-s", str(SPEED_WPM), "-b", "1", "--stdin", "-w", str(out)]
        try:
            run = subprocess.run(
                cmd, input=spoken_text(text).encode(), capture_output=True, timeout=ESPEAK_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as e:
            raise PromptError(f"提示音 {key}：espeak-ng 超过 {ESPEAK_TIMEOUT_S} 秒未结束") from e
        except OSError as e:
            raise PromptError(f"提示音 {key}：无法运行 espeak-ng：{e}") from e
        err = run.stderr.decode(errors="replace").strip()
        # espeak-ng exits 0 even when it cannot write the file, so the file is checked too.
        if run.returncode != 0 or not out.exists():
            raise PromptError(f"提示音 {key}：espeak-ng 合成失败（退出码 {run.returncode}）{err}")
        try:
            x, rate = read_wav(out)
            return trim_normalise(resample(x, rate))
        except (PromptError, wave.Error, EOFError) as e:
            raise PromptError(f"提示音 {key}：espeak-ng 输出无效：{e}") from e


def _digest(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _load_manifest(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return {k: v for k, v in files.items() if isinstance(v, dict)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("提示音清单 %s 无法读取，将全部重新生成", path)
        return {}


def _save_manifest(path: Path, files: dict[str, dict[str, str]]) -> None:
    data = {"format": FORMAT, "files": dict(sorted(files.items()))}
    with _atomic(path) as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=2).encode())


def _build(settings: TelephonySettings, root: Path, espeak: str | None) -> BuildReport:
    cmn = root / "cmn"
    manifest_path = cmn / "manifest.json"
    old = _load_manifest(manifest_path)
    version = espeak_version(espeak) if espeak is not None else ""
    report = BuildReport(espeak_version=version, placeholders=espeak is None)
    texts = speech_texts(settings)
    new: dict[str, dict[str, str]] = {}
    try:
        for key in needed_keys(settings):
            text = texts.get(key, "")
            kind = "synth" if key in SYNTH else "placeholder" if espeak is None else "speech"
            parts = {"key": key, "kind": kind, "pipeline": PIPELINE, "format": FORMAT}
            if kind == "speech":
                parts.update(text=text, voice=VOICE, speed=str(SPEED_WPM), espeak=version)
            h = _digest(parts)
            prev, path = old.get(key, {}), cmn / f"{key}.wav"
            # Placeholders never replace real speech for the same text.
            real = (
                kind == "placeholder" and prev.get("kind") == "speech" and prev.get("text") == text
            )
            if path.exists() and (prev.get("hash") == h or real):
                new[key] = prev
                report.unchanged.append(key)
                continue
            if espeak is not None and kind == "speech":
                write_wav(path, synthesize(key, text, espeak))
            else:
                write_wav(path, SYNTH[key]() if kind == "synth" else placeholder(key))
            new[key] = {"hash": h, "kind": kind, "text": text}
            report.generated.append(key)
    finally:
        # Whatever was finished stays recorded, so a retry after an error resumes from there.
        for key, entry in old.items():
            new.setdefault(key, entry)
        keep = set(needed_keys(settings))
        _save_manifest(manifest_path, {k: v for k, v in new.items() if k in keep})
    return report


def build_prompts(
    settings: TelephonySettings, root: Path, *, espeak: str = "espeak-ng"
) -> BuildReport:
    """Generate root/cmn/*.wav; files whose text, voice and espeak version are unchanged stay."""
    report = _build(settings, Path(root), espeak)
    done = len(report.generated), len(report.unchanged), report.espeak_version
    log.info("提示音生成完成：新生成 %d 个，未变化 %d 个（espeak-ng %s）", *done)
    return report


def build_placeholder_prompts(settings: TelephonySettings, root: Path) -> BuildReport:
    """Tone-only stand-ins for every needed file, for machines without espeak-ng."""
    report = _build(settings, Path(root), None)
    log.warning(
        "未使用 espeak-ng：已为 %d 个语音提示生成提示音占位文件，来电者只能听到提示音；"
        "安装 espeak-ng（apt-get install espeak-ng）后请重新生成提示音",
        len(report.generated),
    )
    return report


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def valid_wav(path: Path) -> str | None:
    """None when `path` is a mono 16-bit PCM WAV at a supported rate, else the reason."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getparams()[:4]
    except (OSError, wave.Error, EOFError) as e:
        return f"无法读取：{e}"
    problems = [
        (channels != 1, f"声道数为 {channels}，应为单声道"),
        (width != 2, f"采样位数为 {width * 8}，应为 16 位"),
        (rate not in MN_RATES, f"采样率 {rate} Hz 不受支持"),
        (frames == 0, "没有音频数据"),
    ]
    return next((why for bad, why in problems if bad), None)


class PromptLibrary:
    """Finds prompt files for the IVR: mn/<key>.wav when present and valid, else cmn/<key>.wav."""

    needed_keys = staticmethod(needed_keys)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()
        # path → ((mtime, size), value): re-read only when an operator replaces the file
        self._checked: dict[Path, tuple[tuple[int, int], str | None]] = {}
        self._durations: dict[Path, tuple[tuple[int, int], float]] = {}

    def _cached(
        self, cache: dict[Path, tuple[tuple[int, int], T]], path: Path, f: Callable[[Path], T]
    ) -> T:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = cache.get(path)  # single dict operations are atomic; a race only reads twice
        if hit is None or hit[0] != stamp:
            hit = cache[path] = (stamp, f(path))
        return hit[1]

    def _once(self, language: str, key: str, message: str, *args: object) -> None:
        # Every call plays prompts; one line per key is enough to tell operators what to record.
        with self._lock:
            if (language, key) in self._warned:
                return
            self._warned.add((language, key))
        log.warning(message, *args)

    def _problem(self, path: Path) -> str | None:
        """Why `path` cannot be played, or None when it can."""
        try:
            return self._cached(self._checked, path, valid_wav)
        except OSError:
            return MISSING

    def path(self, language: str, key: str) -> Path:
        if language == "mn" and key not in NEUTRAL:
            mn = self.root / "mn" / f"{key}.wav"
            problem = self._problem(mn)
            if problem is None:
                return mn
            if problem == MISSING:
                self._once("mn", key, "蒙古语提示音 %s 缺失，暂用普通话", key)
            else:
                self._once("mn", key, "蒙古语提示音 %s 无效（%s），暂用普通话", key, problem)
        cmn = self.root / "cmn" / f"{key}.wav"
        if not cmn.is_file():
            raise PromptError(f"提示音 {key} 缺失：{cmn} 不存在，请先生成提示音")
        return cmn

    def duration_s(self, path: Path) -> float:
        return self._cached(self._durations, path, wav_seconds)

    def keys(self) -> list[str]:
        """Keys of the Mandarin set: the manifest's, else the WAV files present."""
        files = _load_manifest(self.root / "cmn" / "manifest.json")
        return sorted(files or (p.stem for p in (self.root / "cmn").glob("*.wav")))

    def missing(self, language: str, keys: Iterable[str] | None = None) -> list[str]:
        """Keys without a playable file in `language` (neutral tones do not count for mn)."""
        wanted = list(keys) if keys is not None else self.keys()
        if language == "mn":
            wanted = [k for k in wanted if k not in NEUTRAL]
            return [k for k in wanted if self._problem(self.root / "mn" / f"{k}.wav")]
        return [k for k in wanted if not (self.root / language / f"{k}.wav").is_file()]


def concat(paths: list[Path], out: Path) -> float:
    """Join WAVs into one 16 kHz file (others are resampled), atomically; returns seconds."""
    if not paths:
        raise PromptError("没有要拼接的提示音")
    parts = []
    for p in paths:
        try:
            x, rate = read_wav(p)
        except (OSError, wave.Error, EOFError) as e:
            raise PromptError(f"提示音 {p.name} 无法读取：{e}") from e
        parts.append(resample(x, rate))
    return write_wav(Path(out), np.concatenate(parts))
