"""Items built without an LLM: from a description (offline demo) or from a class label.

Two uses. The offline demo model writes gibberish, so ``--model tiny`` runs would otherwise end with
every item rejected; template items keep the whole path (formats, card, training, evaluation)
runnable offline, flagged ``offline_demo``. Labelled image folders (CRC-100K layout) give closed
questions with a known answer: "which tissue is this?" with distractors drawn from the other
classes, the data behind the assistant's learning proof.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

# Features a description may name; a template MCQ asks which one is present.
FEATURES = (
    "necrosis", "mitotic figures", "lymphocytes", "glands", "mucin", "fibrous stroma", "adipocytes",
    "keratin pearls", "hemorrhage", "calcifications", "prominent nucleoli", "blood vessels",
    "papillae", "plasma cells", "neutrophils", "granulomas", "cartilage", "signet ring cells",
    "eosinophilic cytoplasm", "hyperchromatic nuclei", "smooth muscle", "goblet cells",
)  # fmt: skip


def rng_for(*parts: Any) -> random.Random:
    return random.Random(int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12], 16))


def described_terms(text: str) -> list[str]:
    """Long words of a description (a feature it names when no listed feature occurs)."""
    from pathgen.instruct.checks import STOPWORDS

    words = sorted({w.strip(".,;:()") for w in text.lower().split()} - STOPWORDS)
    return [w for w in words if len(w) > 7 and w.isalpha()] or ["hematoxylin and eosin staining"]


def mcq_from_description(pair: Any, n_options: int) -> dict[str, Any]:
    """Which listed feature is present: one the description names, distractors it does not."""
    text = (pair.description or pair.caption or "").lower()
    from pathgen.instruct.checks import support

    rng = rng_for("mcq", pair.key)
    present = [f for f in FEATURES if f in text] or described_terms(text)
    absent = [f for f in FEATURES if support(f, text) == 0]
    answer = rng.choice(present)
    options = [answer, *rng.sample(absent, n_options - 1)]
    return {
        "question": "Which of the following is seen in this image?",
        "options": options,
        "answer": answer,
        "explanation": f"The image shows {answer}.",
    }


def conversation_from_description(pair: Any) -> dict[str, Any]:
    description = pair.description or pair.caption
    return {
        "turns": [
            {"question": "Describe the morphology you see in this image.", "answer": description},
            {"question": "Summarise the image in one sentence.", "answer": pair.caption},
        ]
    }


def class_mcq(
    key: str, label: str, names: dict[str, str], n_options: int, question: str, seed: int = 0
) -> dict[str, Any]:
    """A tissue-class question: the true class's name and ``n_options - 1`` other classes' names."""
    rng = rng_for("class", seed, key)
    others = [names[c] for c in sorted(names) if c != label]
    if len(others) < n_options - 1:
        raise ValueError(f"{n_options} options need {n_options} classes, the folder has {len(names)}")
    answer = names[label]
    return {
        "question": question,
        "options": [answer, *rng.sample(others, n_options - 1)],
        "answer": answer,
        "explanation": f"The image shows {answer}.",
    }
