"""REAL transcribed English speech: the 568 prompts of the Asterisk phone system (one professional US-English speaker,
"Allison", 25.5 minutes), from the Debian packages `asterisk-core-sounds-en-g722` (audio, 16 kHz G.722) and
`asterisk-core-sounds-en` (one `id: text` transcript line per clip), both 1.6.1-1, CC-BY-SA-3.0.

Fetching: `apt-get download` both packages (no root needed; a stale package list is refreshed once, which does), then
`dpkg-deb -x`, then every clip is decoded to 16 kHz mono with ffmpeg (the one bundled in PyPI `imageio-ffmpeg`, or a
system `ffmpeg`) and cached as 16-bit PCM (`_audio.save_clips`), with the packages' copyright file and `origin.json`.

Rows: {"audio": float32 at 16 kHz, "sampling_rate", "text", "id" (e.g. "digits/1"), "seconds", "clean", "label": None}.
`text` is the transcript as written ("Press 1 ...", cased, punctuated); bracketed notes such as "at [@]" are cut to the
spoken words ("at"). WER normalises references and hypotheses alike (Whisper's English normaliser: "press one" ==
"Press 1."), so numerals need nothing more.

Split (fixed, no randomness): a clip is *clean* when it is not under `silence/`, its transcript has no `[ ] ( ) * # @`,
it has at least 3 words and lasts at most 30 s (~263 clips). Clean clips go by the first 8 hex digits of the SHA-256 of
their id, modulo 100: 0-59 train, 60-69 validation, 70-99 test. Every other clip with spoken words (short prompts such
as "digits/7", "press * to ...") goes to train only; clips with no spoken words (silence, tones) are dropped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import CompressError
from ._audio import RATE, load_clips, save_clips
from ._cache import apt_lock, fetched, run_tool

DESCRIPTION = (
    "REAL speech: 568 Asterisk phone prompts (one US-English speaker, 25.5 min) with transcripts, 16 kHz, "
    "~263 clean sentence clips split by a hash of the clip id (60/10/30 % train/validation/test; short and noisy "
    "clips in train only), from Debian asterisk-core-sounds-en(-g722) 1.6.1-1, CC-BY-SA-3.0"
)
VERSION = "1.6.1-1"
AUDIO_PACKAGE, TEXT_PACKAGE = "asterisk-core-sounds-en-g722", "asterisk-core-sounds-en"
SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
LICENCE = "CC-BY-SA-3.0"
KNOWN_WITHOUT_AUDIO = {"pls-try-call-later"}  # transcribed in 1.6.1-1, but the package ships no clip for it
APT_HINT = "needs Debian's apt-get and dpkg-deb (apt-get update, as root, if the packages are not found)"
FFMPEG_HINT = "pip install imageio-ffmpeg==0.8.1 (bundles ffmpeg), or apt-get install -y ffmpeg"
NOISY = re.compile(r"[\[\]()*#@]")
SPLIT_BUCKETS = {"train": range(0, 60), "validation": range(60, 70), "test": range(70, 100)}
MIN_WORDS, MAX_SECONDS = 3, 30.0


def bucket(clip_id: str) -> int:
    """0..99 from the clip id alone: the split never depends on order, seeds or the other clips."""
    return int(hashlib.sha256(clip_id.encode()).hexdigest()[:8], 16) % 100


def spoken(text: str) -> str:
    """The spoken words of a transcript: bracketed notes ("[ascending tones]", "(1 second of silence)") removed."""
    return " ".join(re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text).split())


def is_clean(clip_id: str, text: str, seconds: float) -> bool:
    return (
        not clip_id.startswith("silence/")
        and not NOISY.search(text)
        and len(text.split()) >= MIN_WORDS
        and seconds <= MAX_SECONDS
    )


def split_of(clip_id: str, text: str, seconds: float) -> str:
    if not is_clean(clip_id, text, seconds):
        return "train"
    b = bucket(clip_id)
    return next(name for name, r in SPLIT_BUCKETS.items() if b in r)


def read_transcripts(path: Path) -> dict[str, str]:
    """`core-sounds-en.txt.gz`: `id: text` lines (`;` starts a comment) -> {id: text}."""
    out = {}
    for line in gzip.decompress(path.read_bytes()).decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith(";") and ": " in line:
            clip_id, text = line.split(": ", 1)
            out[clip_id.strip()] = text.strip()
    return out


def ffmpeg() -> str:
    """The ffmpeg executable: imageio-ffmpeg's bundled one, else `ffmpeg` on PATH; a one-line error otherwise."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise CompressError(
                "asterisk-prompts", "decoding G.722 audio needs ffmpeg, which is missing", FFMPEG_HINT
            ) from None
        return found


def decode(path: Path, exe: str) -> np.ndarray:
    """A G.722 file -> float32 mono at 16 kHz; a missing, empty or undecodable file is a one-line error naming it."""
    if not path.is_file():
        raise CompressError("asterisk-prompts", f"audio file {path} is missing", "re-fetch the asset")
    cmd = [exe, "-nostdin", "-v", "error", "-f", "g722", "-i", str(path), "-ar", str(RATE), "-ac", "1"]
    done = subprocess.run([*cmd, "-f", "s16le", "-"], capture_output=True)
    if done.returncode != 0 or len(done.stdout) < 2:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no audio in it"])[-1]
        raise CompressError("asterisk-prompts", f"cannot decode audio file {path}: {why}", "re-fetch the asset")
    return np.frombuffer(done.stdout[: len(done.stdout) // 2 * 2], np.int16).astype(np.float32) / 32768


def rows_from(root: Path, exe: str) -> dict[str, list[dict]]:
    """The extracted packages under `root` -> {split: rows with audio}. Every transcribed clip (but the known one
    without audio) must have a decodable file."""
    transcripts = read_transcripts(root / TRANSCRIPTS)
    if not transcripts:
        raise CompressError("asterisk-prompts", f"no transcripts in {root / TRANSCRIPTS}", "re-fetch the asset")
    items = [(i, t) for i, t in sorted(transcripts.items()) if i not in KNOWN_WITHOUT_AUDIO and spoken(t)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        audio = list(pool.map(lambda item: decode(root / SOUNDS / f"{item[0]}.g722", exe), items))
    out: dict[str, list[dict]] = {name: [] for name in SPLIT_BUCKETS}
    for (clip_id, text), x in zip(items, audio):
        seconds = round(len(x) / RATE, 3)
        clean = is_clean(clip_id, text, seconds)
        row = {"audio": x, "text": text if clean else spoken(text), "id": clip_id, "seconds": seconds}
        out[split_of(clip_id, text, seconds)].append({**row, "clean": clean, "label": None})
    return out


def _download(tmp: Path) -> None:
    exe = ffmpeg()  # before anything is downloaded
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise CompressError("asterisk-prompts", f"`{tool}` is not installed", APT_HINT)
    with tempfile.TemporaryDirectory() as work:
        wanted = [f"{AUDIO_PACKAGE}={VERSION}", f"{TEXT_PACKAGE}={VERSION}"]
        with apt_lock():
            try:
                _apt_download(wanted, work)
            except CompressError:  # a machine that never ran apt-get update does not know the packages yet
                run_tool(["apt-get", "update", "-q"], APT_HINT, "asterisk-prompts")
                _apt_download(wanted, work)
        root = Path(work) / "root"
        for deb in sorted(Path(work).glob("*.deb")):
            run_tool(["dpkg-deb", "-x", str(deb), str(root)], APT_HINT, "asterisk-prompts")
        splits = rows_from(root, exe)
        shutil.copy(root / "usr/share/doc" / TEXT_PACKAGE / "copyright", tmp / "LICENSE")
    save_clips(tmp, splits)
    origin = {
        "packages": wanted,
        "registry": "Debian",
        "licence": LICENCE,
        "speaker": "Allison Smith (en_US_f_Allison)",
        "split": "clean clips by sha256(id)[:8] % 100: 0-59 train, 60-69 validation, 70-99 test; others train",
        "clips": {name: len(rows) for name, rows in splits.items()},
        "decoder": "ffmpeg -f g722 -ar 16000 -ac 1",
    }
    (tmp / "origin.json").write_text(json.dumps(origin, indent=1))


def _apt_download(packages: list[str], folder: str) -> None:
    done = subprocess.run(["apt-get", "download", "-q", *packages], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CompressError("asterisk-prompts", f"`apt-get download` failed: {last}", APT_HINT)


def fetch() -> Path:
    return fetched("asterisk-prompts", _download)


def load() -> dict[str, list[dict]]:
    """{"train"|"validation"|"test": [{"audio": float32 array, "sampling_rate": 16000, "text", "id", "seconds",
    "clean", "label": None}]}; validation and test hold clean clips only."""
    return load_clips(fetch())
