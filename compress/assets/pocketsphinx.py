"""The 10 real English utterances with transcripts shipped in Debian's `pocketsphinx-testdata` (5 LibriVox read
sentences from Sense and Sensibility, 5 spoken playing-card commands), 16 kHz mono. Small but real: the ASR sanity
set, used for evaluation only (one split, "test")."""

from __future__ import annotations

from pathlib import Path

from ._audio import load_clips, read_wav, save_clips
from ._cache import apt_install, fetched

DESCRIPTION = (
    "10 real English utterances with transcripts (5 LibriVox read speech, 5 card commands), 16 kHz, "
    "test split only, from Debian pocketsphinx-testdata, BSD-2-Clause"
)
PACKAGE_DATA = Path("/usr/share/pocketsphinx/test/data")
SETS = {"librivox": "transcription", "cards": "cards.transcription"}  # folder -> transcript file


def _transcripts(path: Path) -> list[tuple[str, str]]:
    """Sphinx transcript lines `<s> words </s> (file id)` -> [(file id, words)]."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            words, fid = line.rsplit("(", 1)
            out.append((fid.strip(" )"), " ".join(w for w in words.split() if w not in ("<s>", "</s>"))))
    return out


def _copy(tmp: Path) -> None:
    apt_install("pocketsphinx-testdata", PACKAGE_DATA / "cards" / "cards.transcription")
    rows = []
    for folder, transcript in SETS.items():
        for fid, text in _transcripts(PACKAGE_DATA / folder / transcript):
            audio, rate = read_wav(PACKAGE_DATA / folder / f"{fid}.wav")
            if rate != 16_000:
                raise ValueError(f"{fid}.wav is {rate} Hz, expected 16 kHz")
            rows.append({"audio": audio, "text": text, "label": None, "id": f"{folder}/{fid}"})
    save_clips(tmp, {"test": rows})


def fetch() -> Path:
    return fetched("pocketsphinx-utterances", _copy)


def load() -> dict[str, list[dict]]:
    """{"test": [{"audio": float32 array, "sampling_rate": 16000, "text": lower-case transcript, "label": None,
    "id": "librivox/..."}]}"""
    return load_clips(fetch())
