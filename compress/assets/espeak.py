"""SYNTHETIC English speech made with espeak-ng (Debian `espeak-ng`), resampled to 16 kHz. Two subsets:

- keywords:  a Speech-Commands-style set, 10 keywords (yes no up down left right on off stop go) x 48 voices
             (8 English accents x 6 voice variants) x 2 seeded speed/pitch renditions = 960 clips;
             split by voice (38 / 5 / 5 voices -> train / validation / test), label = keyword index.
- sentences: the first 60 Harvard sentences (IEEE 1969 phonetically balanced lists 1-6, public domain), each spoken
             by 3 seeded voices at seeded speed and pitch = 180 clips; split by sentence (44 / 8 / 8), text = the
             sentence as written (cased, punctuated: Whisper's output style), label None.

Everything is seeded, so a re-fetch makes the same clips. Synthetic speech is far cleaner and more regular than real
speech: numbers measured on it are labelled synthetic wherever they are reported. Generation takes about a minute.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._audio import load_clips, read_wav, resample, save_clips
from ._cache import apt_install, fetched

DESCRIPTION = (
    "SYNTHETIC speech (espeak-ng, 16 kHz): `keywords` 10 commands x 48 voices x 2 (960 clips, split by voice) and "
    "`sentences` 60 Harvard sentences x 3 voices (180 clips, split by sentence); GPL-3 tool, generated data"
)
SUBSETS = ("sentences", "keywords")
SEED = 1234
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m3", "m6", "f1", "f2", "f4")
VOICES = tuple(f"{a}+{v}" for a in ACCENTS for v in VARIANTS)
HARVARD = (
    # list 1
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    # list 2
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    # list 3
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    # list 4
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    # list 5
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
    # list 6
    "The frosty air passed through the coat.",
    "The crooked maze failed to fool the mouse.",
    "Adding fast leads to wrong sums.",
    "The show was a flop from the very start.",
    "A saw is a tool used for making boards.",
    "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.",
    "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.",
    "Both lost their lives in the raging storm.",
)


def _split(items: list, seed: int, n_validation: int, n_test: int) -> dict[str, list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return {
        "train": items[: len(items) - n_validation - n_test],
        "validation": items[len(items) - n_validation - n_test : len(items) - n_test],
        "test": items[len(items) - n_test :],
    }


def plan() -> dict[str, dict[str, list[dict]]]:
    """Every clip to synthesise, without audio: {subset: {split: [{"text", "label", "voice", "speed", "pitch"}]}}."""
    rng = random.Random(SEED)

    def style() -> dict:
        return {"speed": rng.randint(130, 200), "pitch": rng.randint(30, 70)}

    keywords = {
        split: [
            {"text": k, "label": i, "voice": v, **style()}
            for v in voices
            for _ in range(2)
            for i, k in enumerate(KEYWORDS)
        ]
        for split, voices in _split(VOICES, SEED, 5, 5).items()
    }
    sentences = {
        split: [{"text": s, "label": None, "voice": v, **style()} for s in texts for v in rng.sample(VOICES, 3)]
        for split, texts in _split(HARVARD, SEED, 8, 8).items()
    }
    return {"keywords": keywords, "sentences": sentences}


def synthesize(text: str, voice: str, speed: int, pitch: int, path: Path):
    """One clip through the WAV file `path`: espeak-ng (22,050 Hz) -> float32 at 16 kHz."""
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    audio, rate = read_wav(path)
    path.unlink()
    return resample(audio, rate)


def _generate(tmp: Path) -> None:
    apt_install("espeak-ng", Path("/usr/bin/espeak-ng"))
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(max_workers=2) as pool:
        for subset, splits in plan().items():
            out = {}
            for split, rows in splits.items():
                paths = [Path(work) / f"{subset}-{split}-{i}.wav" for i in range(len(rows))]
                clips = pool.map(lambda r, p: synthesize(r["text"], r["voice"], r["speed"], r["pitch"], p), rows, paths)
                out[split] = [{"audio": a, **r} for a, r in zip(clips, rows)]
            (tmp / subset).mkdir()
            save_clips(tmp / subset, out)


def fetch() -> Path:
    return fetched("espeak-speech", _generate)


def load(subset: str = "sentences") -> dict[str, list[dict]]:
    """{"train"|"validation"|"test": [{"audio": float32 array, "sampling_rate": 16000, "text", "label", "voice",
    "speed", "pitch"}]} of one subset (sentences or keywords). SYNTHETIC speech."""
    if subset not in SUBSETS:
        from ..errors import CompressError

        raise CompressError(
            "data.subset", f"espeak-speech has no subset {subset!r}", f"use one of {', '.join(SUBSETS)}"
        )
    return load_clips(fetch() / subset)
