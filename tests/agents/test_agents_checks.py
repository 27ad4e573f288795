"""Output checks, revise JSON parsing and versioned prompt files."""

from __future__ import annotations

import pytest

from pathgen.agents.checks import check_output
from pathgen.agents.prompts import available_versions, load_prompt
from pathgen.agents.revise import parse_revision
from pathgen.engine.fakeserver import CAPTION, DESCRIPTION, FRENCH, LOOP, REFUSAL


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        (DESCRIPTION, "stop", None),
        (CAPTION, "stop", None),
        ("", "stop", "empty"),
        ("  \n", "stop", "empty"),
        (REFUSAL, "stop", "refusal"),
        ("As an AI, I cannot diagnose.", "stop", "refusal"),
        (LOOP, "stop", "repetition"),
        ("nuclei " + "ab" * 0 + "atypical cells, " * 30, "stop", "repetition"),
        (FRENCH, "stop", "language"),
        ("肿瘤细胞排列成巢状，细胞核增大。", "stop", "language"),
        (DESCRIPTION[:80], "length", "cut_off"),
    ],
)
def test_check_output(text, finish, reason):
    assert check_output(text, finish) == reason


def test_parse_revision_accepts_fenced_json_and_rejects_bad_shapes():
    rev = parse_revision(
        'Sure!\n```json\n{"edits": [{"type": "delete", "before": "necrosis"}], "revised": "ok"}\n```'
    )
    assert rev.edits[0].type == "delete" and rev.edits[0].after == "" and rev.revised == "ok"
    for bad, why in [
        ("no json here", "no JSON"),
        ('{"edits": [], "revised": ""}', "revised"),
        ('{"edits": [{"type": "rewrite"}], "revised": "x"}', "edits.0.type"),
        ('{"edits": [', "no JSON"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_revision(bad)


def test_prompts_are_versioned_files_with_sections(tmp_path):
    for agent in ("describe", "revise", "summarize"):
        assert "v1" in available_versions(agent)
        prompt = load_prompt(agent, "v1")
        assert {"system", "user", "reask"} <= set(prompt.sections) and prompt.id.startswith("v1@")
    text = load_prompt("describe").render("user", project="TCGA-BRCA", findings="IDC", selection_prompt="x")
    assert "TCGA-BRCA" in text and "{" not in text
    assert '"edits"' in load_prompt("revise").render("system")  # JSON braces survive rendering
    with pytest.raises(FileNotFoundError, match="available: v1"):
        load_prompt("describe", "v9")
    with pytest.raises(ValueError, match="unknown agent"):
        load_prompt("critic")
    custom = tmp_path / "mine.txt"
    custom.write_text("### system\ns\n### user\nu\n### reask\nr\n")
    assert load_prompt("describe", str(custom)).sections["user"] == "u"


def test_refusal_and_loop_checks_match_their_plain_definitions():
    """The fast forms (split refusal regex, find-based period search) decide exactly as the plain ones."""
    import random
    import re

    from pathgen.agents.checks import is_refusal, is_repetitive

    plain_refusal = re.compile(
        r"^\W*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i am unable|i'?m unable|i'?m not able|"
        r"as an ai|i am not able|unfortunately,? i can)|\b(cannot|can't|unable to) (assist|help) with\b",
        re.IGNORECASE,
    )

    def plain_period(text: str) -> bool:
        tail = text[-400:]
        return len(tail) >= 160 and any(tail[p:] == tail[:-p] for p in range(1, 101))

    rng = random.Random(0)
    frags = [
        "I'm sorry",
        "Sorry,",
        "I CAN'T",
        "as an AI",
        "cannot",
        "unable to",
        "assist",
        "help",
        "with",
        " ",
    ]
    for _ in range(5000):
        text = "".join(rng.choice(frags) for _ in range(rng.randint(0, 8)))
        assert is_refusal(text) == bool(plain_refusal.search(text)), text
        unit = "".join(rng.choice("ab c") for _ in range(rng.randint(1, 120)))
        text = "x" * rng.randint(0, 3) + unit * rng.randint(1, 30) + rng.choice(["", "y"])
        if len(text.split()) < 24:  # only the period half of is_repetitive decides here
            assert is_repetitive(text) == plain_period(text), text
