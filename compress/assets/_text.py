"""Plain text -> training rows: paragraphs (blank-line separated), packed into passages of a bounded size."""

from __future__ import annotations

import re

PASSAGE_CHARS = 2000  # about 450-550 SmolLM2 tokens: one passage fits a 512-token window with little padding


def paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, stripped; line breaks inside a block (verse, speaker names) are kept."""
    return [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Consecutive paragraphs joined by a blank line while the passage stays within `max_chars`; a paragraph is never
    split, so a longer one is a passage of its own. Joining the passages with a blank line gives the text back."""
    out: list[str] = []
    for para in paragraphs(text):
        if out and len(out[-1]) + 2 + len(para) <= max_chars:
            out[-1] += "\n\n" + para
        else:
            out.append(para)
    return out
