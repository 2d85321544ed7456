"""IVR prompts: real espeak-ng builds 16 kHz Mandarin WAVs incrementally; Mongolian recordings
fall back to Mandarin; concatenation, placeholders and a missing espeak-ng."""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from telephony.config import DEFAULT_PROMPTS, TelephonySettings
from telephony.prompts import (
    VOICE,
    PromptError,
    PromptLibrary,
    build_placeholder_prompts,
    build_prompts,
    concat,
    digits,
    needed_keys,
    read_wav,
    spoken_text,
    status_readout,
)
from tickets.model import Status

SETTINGS = TelephonySettings(prompts=dict(DEFAULT_PROMPTS))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prompts")
    report = build_prompts(SETTINGS, root)
    assert sorted(report.generated) == sorted(needed_keys(SETTINGS))
    return root


@pytest.fixture
def root(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built set, for tests that change it."""
    shutil.copytree(built, tmp_path / "p")
    return tmp_path / "p"


def params(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes() / 16000


def write(path: Path, x: np.ndarray, rate: int, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat((x * 20000).astype("<i2"), channels).tobytes())


def test_the_voice_reads_chinese_characters_as_mandarin() -> None:
    # `-v cmn` switches to English for Hanzi ("(en)nI55nt'u:55"); the pinyin voice does not.
    out = subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", VOICE, "您好"], capture_output=True, text=True, check=True
    ).stdout
    assert "(en)" not in out and "n'i35n" in out


def test_prompt_is_16khz_mono_pcm_speech_at_minus_3_dbfs(built: Path) -> None:
    channels, width, rate, seconds = params(built / "cmn" / "welcome.wav")
    assert (channels, width, rate) == (1, 2, 16000)
    assert 3 < seconds < 30
    x, _ = read_wav(built / "cmn" / "welcome.wav")
    assert 20 * np.log10(np.max(np.abs(x))) == pytest.approx(-3, abs=0.1)
    assert np.sqrt(np.mean(x**2)) > 0.02  # speech, not silence
    # silence trimmed to about 100 ms at each end
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.max(np.abs(x)))
    assert 0.05 < loud[0] / 16000 < 0.2 and 0.05 < (len(x) - loud[-1]) / 16000 < 0.2


def test_digits_statuses_and_tones_are_all_there(built: Path) -> None:
    cmn = built / "cmn"
    spoken = [f"digit_{d}" for d in range(10)] + [f"status_{s.value}" for s in Status]
    for key in spoken:
        assert params(cmn / f"{key}.wav")[:3] == (1, 2, 16000), key
        x, _ = read_wav(cmn / f"{key}.wav")
        assert len(x) > 0.25 * 16000 and np.max(np.abs(x)) > 0.5, key
    assert params(cmn / "beep.wav")[3] == pytest.approx(0.4)
    assert params(cmn / "moh.wav")[3] == pytest.approx(20, abs=1)
    x, _ = read_wav(cmn / "silence_500ms.wav")
    assert len(x) == 8000 and not x.any()
    for key in DEFAULT_PROMPTS:
        assert (cmn / f"{key}.wav").is_file()


def test_second_build_generates_nothing(root: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (root / "cmn").glob("*.wav")}
    report = build_prompts(SETTINGS, root)
    assert report.generated == []
    assert sorted(report.unchanged) == sorted(needed_keys(SETTINGS))
    assert {p.name: p.stat().st_mtime_ns for p in (root / "cmn").glob("*.wav")} == before
    assert not list((root / "cmn").glob("*.tmp"))


def test_changing_one_text_regenerates_only_that_file(root: Path) -> None:
    old = params(root / "cmn" / "goodbye.wav")[3]
    prompts = {**DEFAULT_PROMPTS, "goodbye": "感谢您的来电，祝您生活愉快，再见。"}
    report = build_prompts(TelephonySettings(prompts=prompts), root)
    assert report.generated == ["goodbye"]
    assert params(root / "cmn" / "goodbye.wav")[3] > old
    # a deleted file is rebuilt even though the manifest still lists it
    (root / "cmn" / "digit_3.wav").unlink()
    assert build_prompts(TelephonySettings(prompts=prompts), root).generated == ["digit_3"]


def test_mongolian_falls_back_to_mandarin_and_logs_once(
    built: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lib = PromptLibrary(built)
    with caplog.at_level(logging.INFO, logger="telephony.prompts"):
        assert lib.path("mn", "welcome") == built / "cmn" / "welcome.wav"
        assert lib.path("mn", "welcome") == built / "cmn" / "welcome.wav"
    records = [r.getMessage() for r in caplog.records]
    assert records == ["蒙古语提示音 welcome 缺失，暂用普通话"]
    assert lib.path("cmn", "menu") == built / "cmn" / "menu.wav"
    assert lib.path("mn", "beep") == built / "cmn" / "beep.wav"  # tones are language-neutral
    assert len(lib.missing("mn")) == len(needed_keys(SETTINGS)) - 3
    assert lib.missing("cmn") == []
    with pytest.raises(PromptError, match="no_such_key"):
        lib.path("mn", "no_such_key")


def test_operator_recordings_in_mn_are_used_when_valid(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tone = np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)
    write(root / "mn" / "welcome.wav", tone, 8000)  # telephone-rate recording is fine
    write(root / "mn" / "menu.wav", tone, 16000, channels=2)  # stereo is not
    (root / "mn" / "goodbye.wav").write_bytes(b"not a wav")
    lib = PromptLibrary(root)
    with caplog.at_level(logging.INFO, logger="telephony.prompts"):
        assert lib.path("mn", "welcome") == root / "mn" / "welcome.wav"
        assert lib.path("mn", "menu") == root / "cmn" / "menu.wav"
        assert lib.path("mn", "goodbye") == root / "cmn" / "goodbye.wav"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("无效" in m and "暂用普通话" in m for m in messages)
    assert "welcome" not in lib.missing("mn") and "menu" in lib.missing("mn")
    assert lib.duration_s(root / "mn" / "welcome.wav") == pytest.approx(1.0)


def test_concat_duration_is_the_sum(built: Path, tmp_path: Path) -> None:
    lib = PromptLibrary(built)
    keys = ["voicemail_saved", *digits("20240517000123")]
    paths = [lib.path("cmn", k) for k in keys]
    out = tmp_path / "out" / "saved.wav"
    seconds = concat(paths, out)
    assert seconds == pytest.approx(sum(lib.duration_s(p) for p in paths))
    assert params(out) == (1, 2, 16000, pytest.approx(seconds))
    # an operator's 8 kHz file is resampled to the library's 16 kHz
    write(tmp_path / "mn8k.wav", np.zeros(4000), 8000)
    mixed = concat([tmp_path / "mn8k.wav", paths[0]], tmp_path / "mixed.wav")
    assert mixed == pytest.approx(0.5 + lib.duration_s(paths[0]))
    assert params(tmp_path / "mixed.wav")[2] == 16000


def test_key_helpers() -> None:
    assert digits("2031") == ["digit_2", "digit_0", "digit_3", "digit_1"]
    with pytest.raises(ValueError):
        digits("12a")
    assert status_readout("20240517000123", "accepted") == ["status_is", "status_accepted"]
    with pytest.raises(ValueError):
        status_readout("1", "nonsense")
    # hotline numbers are read digit by digit, short counts stay numbers
    assert spoken_text("这里是12345热线，请输入14位") == "这里是一二三四五热线，请输入14位"


def test_missing_espeak_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="apt-get install espeak-ng"):
        build_prompts(SETTINGS, tmp_path, espeak="/nonexistent/espeak-ng")
    assert not list(tmp_path.rglob("*.wav"))


def test_espeak_failure_names_the_prompt(tmp_path: Path) -> None:
    fake = tmp_path / "espeak-ng"
    real = shutil.which("espeak-ng")
    fake.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec {real} --version\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(PromptError, match=r"提示音 \w+：espeak-ng 合成失败（退出码 3）"):
        build_prompts(SETTINGS, tmp_path / "p", espeak=str(fake))


def test_placeholders_cover_every_file_and_real_build_replaces_them(tmp_path: Path) -> None:
    report = build_placeholder_prompts(SETTINGS, tmp_path)
    assert sorted(report.generated) == sorted(needed_keys(SETTINGS))
    for key in needed_keys(SETTINGS):
        assert params(tmp_path / "cmn" / f"{key}.wav")[:3] == (1, 2, 16000), key
    assert PromptLibrary(tmp_path).path("mn", "digit_5").is_file()
    real = build_prompts(SETTINGS, tmp_path)
    assert sorted(real.unchanged) == ["beep", "moh", "silence_500ms"]
    # placeholders never overwrite real speech for unchanged text
    assert build_placeholder_prompts(SETTINGS, tmp_path).generated == []
