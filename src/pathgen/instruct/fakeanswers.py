"""What :mod:`pathgen.engine.fakeserver` answers to the instruct agents: grounded JSON items.

The fake server reads the description out of the request and writes a conversation or an MCQ from
it, as a real LLM would (the answer is a feature the description names), so tests exercise the
parsing, checks, re-asks and formats over real HTTP. Faults plant the bad items the checks must
reject: ``dup_options``, ``answer_not_in_options``, ``leak`` (the question contains the answer),
``unsupported`` (an answer the description does not support), ``blind`` (a LLaVA-Med style "sorry,
I cannot see the image" turn).

Judge requests (``support: judge``) are decided as a careful reader would, by whether the answers'
content terms occur in the description (the same share and bar as ``support: overlap``), with the
terms it misses as the reason; faults plant an ``unsupported`` verdict on any item, or an
``invalid_json`` answer (prose, not the verdict).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pathgen.instruct.checks import STOPWORDS, content_terms, stem, support
from pathgen.instruct.templates import FEATURES, described_terms, rng_for


def _texts(payload: dict[str, Any]) -> tuple[str, str]:
    system = user = ""
    for msg in payload.get("messages", []):
        content = msg.get("content")
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
        )
        if msg.get("role") == "system":
            system += text
        elif msg.get("role") == "user" and not user:
            user = text  # the first user message carries the pair; later ones are re-asks
    return system, user


def _field(user: str, name: str) -> str:
    m = re.search(rf"^{name}: (.*)$", user, re.M)
    return m.group(1).strip() if m else ""


def judge(payload: dict[str, Any], fault: str | None) -> str:
    """A verdict on the item in a judge request: supported when half the answers' terms are described."""
    _, user = _texts(payload)
    description = _field(user, "Description")
    answers = " ".join(re.findall(r"^Answer: (.*)$", user, re.M))
    if fault == "invalid_json":
        return "I think the answer is mostly right, though I am not sure about every detail."
    if fault == "unsupported":
        return json.dumps({"supported": False, "reason": "planted: the answer is not in the description"})
    described = content_terms(description)
    words = re.findall(r"[a-z][a-z0-9-]+", answers.lower())
    missing = sorted({w for w in words if w not in STOPWORDS and len(w) > 2 and stem(w) not in described})
    if answers and support(answers, description) >= 0.5:
        return json.dumps({"supported": True, "reason": "the description states what the answers say"})
    return json.dumps(
        {"supported": False, "reason": f"the description does not mention {', '.join(missing) or 'it'}"}
    )


def answer(agent: str, payload: dict[str, Any], fault: str | None) -> str:
    if agent == "judge":
        return judge(payload, fault)
    system, user = _texts(payload)
    description = _field(user, "Description").lower()
    rng = rng_for("fake", agent, description)
    if agent == "mcq":
        m = re.search(r"with (\d+) options", system)
        n = int(m.group(1)) if m else 4
        present = [f for f in FEATURES if f in description] or described_terms(description)
        absent = [f for f in FEATURES if support(f, description) == 0]
        right = rng.choice(present)
        options = [right, *rng.sample(absent, n - 1)]
        item = {
            "question": "Which of the following is seen in this image?",
            "options": options,
            "answer": right,
            "explanation": f"The image shows {right}, which the morphology supports.",
        }
        if fault == "dup_options":
            item["options"] = [right, right, *options[2:]]
        elif fault == "answer_not_in_options":
            item["answer"] = "granulation tissue of the appendix"
        elif fault == "leak":
            item["question"] = f"This image shows {right}; which of the following is seen?"
        elif fault == "unsupported":
            item["answer"] = options[1]
        return json.dumps(item)
    m = re.search(r"Write (\d+) question-answer turns", system)
    n = int(m.group(1)) if m else 2
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", _field(user, "Description")) if s.strip()]
    sentences = sentences or [_field(user, "Caption")]
    questions = [
        "What does this image show?",
        "What do the nuclei look like?",
        "What else is notable here?",
        "What would you consider in the differential diagnosis?",
        "What does this feature mean?",
    ]
    turns = [{"question": questions[i % 5], "answer": sentences[i % len(sentences)]} for i in range(n)]
    if fault == "blind":
        turns[-1]["answer"] = "I'm sorry, but I cannot see the image, so I cannot describe it."
    return json.dumps({"turns": turns})
