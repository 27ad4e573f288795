"""Fitting a caption into CLIP's context, measured with the open_clip tokenizer itself.

The published summary step did not guarantee the fit: 3,463 of 5,000 released PathGen captions
(69 %) are longer than 77 open_clip tokens and lose their ends when a CLIP model is trained on them.
We count exactly what training will see (the SimpleTokenizer BPE that ships inside open_clip, plus
the start and end tokens), and as a last resort cut at a sentence boundary (at a word boundary only
when even the first sentence is too long) so a caption never ends mid-thought unflagged.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


@lru_cache(maxsize=1)
def clip_tokenizer() -> Any:
    """open_clip's default BPE tokenizer (offline: the vocabulary is inside the package)."""
    import open_clip

    return open_clip.get_tokenizer("ViT-B-16")


def count_tokens(text: str) -> int:
    """open_clip tokens of ``text`` including the start-of-text and end-of-text tokens."""
    return encoded_length(text) + 2


def encoded_length(text: str) -> int:
    """``len(clip_tokenizer().encode(text))``, skipping ``encode``'s text repair where it is a no-op.

    Why: ``encode`` runs ftfy and a double HTML unescape on every call (~0.1 ms, most of a summarize
    check). On printable ASCII they change nothing unless the text holds an HTML entity (ftfy only
    decodes ``&...;``, :func:`html.unescape` is checked directly, so "H&E" stays on the fast path);
    then only case and whitespace are normalised, and the byte-level BPE alphabet maps printable
    ASCII to itself, so the pieces are the tokenizer's own BPE of the same words (its cache
    included). Anything else takes ``encode`` itself.
    """
    tok = clip_tokenizer()
    if not (_repair_is_noop(text) and _fast_path_ok(tok)):
        return len(tok.encode(text))
    return sum(map(_pieces_of(tok), tok.pat.findall(" ".join(text.split()).lower())))


def _repair_is_noop(text: str) -> bool:
    """ftfy and ``html.unescape`` return ``text`` unchanged (a sufficient test, not a necessary one)."""
    if not (text.isascii() and text.isprintable()):
        return False
    amp = text.find("&")
    return amp < 0 or (";" not in text[amp:] and html.unescape(text) == text)


@lru_cache(maxsize=1)
def _pieces_of(tok: Any) -> Callable[[str], int]:
    """BPE pieces of one lower-case ASCII word, memoised (caption vocabularies are small)."""
    return lru_cache(maxsize=1 << 16)(lambda word: tok.bpe(word).count(" ") + 1)


@lru_cache(maxsize=1)
def _fast_path_ok(tok: Any) -> bool:
    """The tokenizer is open_clip's SimpleTokenizer with lower-case cleaning, the one the fast path copies."""
    from open_clip.tokenizer import SimpleTokenizer, _clean_lower

    return type(tok) is SimpleTokenizer and tok.clean_fn is _clean_lower


def fits(text: str, limit: int = 77) -> bool:
    return count_tokens(text) <= limit


def words_for(limit: int) -> int:
    """A word budget that usually fits ``limit`` tokens (pathology words average ~1.4 tokens)."""
    return max(5, int((limit - 2) / 1.45))


def fit_caption(text: str, limit: int = 77) -> tuple[str, bool]:
    """Return ``(caption, cut)``: the text itself when it fits, else its longest fitting prefix.

    The prefix keeps whole sentences; when the first sentence alone is too long it keeps whole
    words and ends with a full stop.
    """
    text = " ".join(text.split())
    if count_tokens(text) <= limit:
        return text, False
    sentences = [s for s in _SENTENCE.split(text) if s]
    kept: list[str] = []
    used = 2
    for sentence in sentences:
        n = encoded_length(sentence)
        if used + n > limit:
            break
        kept.append(sentence)
        used += n
    while kept and count_tokens(_end(" ".join(kept))) > limit:  # BPE is per word, so this is rare
        kept.pop()
    if kept:
        return _end(" ".join(kept)), True
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # longest word prefix that fits together with a final full stop
        mid = (lo + hi + 1) // 2
        if count_tokens(_end(" ".join(words[:mid]))) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return _end(" ".join(words[:lo])), True


def _end(text: str) -> str:
    text = text.rstrip(" ,;:-")
    if text and text[-1] in ".!?":
        return text
    return text.rstrip(";") + "." if text else text
