"""Recorded corruptions on the real PathGen captions: replayable, revertible, and the revise target."""

from __future__ import annotations

import json
import random

from pathgen.agents.revise import parse_revision
from pathgen.agents.training.corrupt import KINDS, Corruption, apply, corrupt, sentences, undo
from pathgen.agents.training.sets import revise_target


def _captions(path, n=300):
    return [" ".join(r["caption"].split()) for r in json.loads(path.read_text())[:n]]


def test_every_corruption_differs_by_exactly_its_recorded_edit(pathgen_captions):
    texts = _captions(pathgen_captions)
    rng = random.Random(0)
    made = {k: 0 for k in KINDS}
    for i, text in enumerate(texts):
        foreign = sentences(texts[(i + 7) % len(texts)])
        for kind in KINDS:
            c = corrupt(text, kind, foreign, rng)
            if c is None:
                continue
            made[kind] += 1
            bad = apply(text, [c])
            assert bad != text and undo(bad, [c]) == text
            edit = c.undo_edit()
            src, dst = sentences(text), sentences(bad)
            if kind == "addition":  # one sentence more, the recorded one, from another description
                assert len(dst) == len(src) + 1 and dst[c.index] == c.text == edit["before"]
                assert dst[: c.index] + dst[c.index + 1 :] == src and edit["type"] == "delete"
            elif kind == "deletion":  # one true sentence less
                assert len(dst) == len(src) - 1 and src[c.index] == c.text == edit["after"]
                assert src[: c.index] + src[c.index + 1 :] == dst and edit["type"] == "add"
            else:  # one term changed into another of its group, nothing else
                assert (
                    len(dst) == len(src) and [a == b for a, b in zip(src, dst, strict=True)].count(False) == 1
                )
                assert dst[c.index].replace(edit["before"], edit["after"], 1) == src[c.index]
                assert c.before.lower() != c.after.lower() and c.subkind
    assert min(made.values()) > 150  # the vocabulary covers most real captions


def test_modification_changes_a_vocabulary_term_of_the_same_group():
    text = "The tumour is poorly differentiated. Numerous lymphocytes infiltrate the stroma."
    seen = set()
    for seed in range(30):
        c = corrupt(text, "modification", [], random.Random(seed))
        seen.add((c.subkind, c.before.lower()))
        if c.subkind == "differentiation":
            assert c.after in ("well differentiated", "moderately differentiated")
    assert {"differentiation", "cell_type", "counts"} <= {k for k, _ in seen}


def test_short_texts_and_missing_terms_give_no_corruption():
    rng = random.Random(0)
    assert corrupt("One sentence only.", "deletion", [], rng) is None
    assert corrupt("Nothing from the vocabulary here. At all.", "modification", [], rng) is None
    assert corrupt("A text. Two.", "addition", [], rng) is None  # no foreign sentence


def test_the_target_is_what_the_chain_revise_agent_outputs():
    c = Corruption("deletion", 1, "Mitoses are frequent.")
    target = revise_target("Sheets of cells. Mitoses are frequent.", [c.undo_edit()])
    parsed = parse_revision(target)
    assert [e.model_dump() for e in parsed.edits] == [
        {"type": "add", "before": "", "after": "Mitoses are frequent."}
    ]
    assert parsed.revised == "Sheets of cells. Mitoses are frequent."
    assert json.loads(target) == {"edits": [c.undo_edit()], "revised": parsed.revised}
