"""Caption lengths in words and in CLIP tokens.

Why CLIP tokens: a caption is only useful to CLIP training up to the text encoder's context (77
tokens with start and end markers); the card reports how many captions fit. We count with
open_clip's own BPE tokenizer (bundled vocabulary, no download) so the number is the one training
sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

CONTEXT_LENGTH = 77


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text or ""))


@lru_cache(maxsize=1)
def _bpe() -> Callable[[str], list[int]]:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer().encode


def clip_token_count(text: str) -> int:
    """Tokens including the start and end markers, before truncation to the context length."""
    return len(_bpe()(text or "")) + 2
