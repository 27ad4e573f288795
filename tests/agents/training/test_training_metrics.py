"""The eval scorers on hand-made answers: each metric moves the way its definition says."""

from __future__ import annotations

import json

import pytest

from pathgen.agents.training.corrupt import Corruption
from pathgen.agents.training.evaluate import markdown, score_describe, score_revise, score_summarize
from pathgen.agents.training.metrics import lcs_length, rouge_l
from pathgen.agents.training.sets import revise_target

CLEAN = (
    "Sheets of pleomorphic cells with hyperchromatic nuclei. Mitoses are frequent. The stroma is fibrotic."
)


def _record(kind: str, corruption: Corruption | None) -> dict:
    from pathgen.agents.training.corrupt import apply

    cs = [corruption] if corruption else []
    return {
        "id": kind,
        "meta": {
            "clean": CLEAN,
            "corrupted": apply(CLEAN, cs),
            "kind": kind,
            "corruptions": [c.as_dict() for c in cs],
            "edits": [c.undo_edit() for c in cs],
        },
    }


RECORDS = [
    _record("clean", None),
    _record("addition", Corruption("addition", 1, "Numerous eosinophils are present.")),
    _record("deletion", Corruption("deletion", 1, "Mitoses are frequent.")),
    _record(
        "modification",
        Corruption(
            "modification",
            0,
            "Sheets of uniform cells with hyperchromatic nuclei.",
            "pleomorphic",
            "uniform",
            "cytology",
        ),
    ),
]


def _answer(text: str) -> dict:
    return {"text": text, "finish_reason": "stop", "error": None}


def test_perfect_answers_score_perfectly():
    answers = [_answer(revise_target(CLEAN, r["meta"]["edits"])) for r in RECORDS]
    m, _ = score_revise(RECORDS, answers)
    assert m["valid_json_rate"] == 1.0 and m["detection_recall"] == 1.0 and m["located_recall"] == 1.0
    assert m["fix_rate"] == 1.0 and m["false_edit_rate"] == 0.0 and m["clean_kept_rate"] == 1.0
    assert all(k["precision"] == 1.0 and k["recall"] == 1.0 for k in m["per_kind"].values())


def test_unchanged_drafts_invalid_json_and_false_edits_are_counted():
    answers = [
        _answer(
            json.dumps(
                {
                    "edits": [{"type": "delete", "before": "Mitoses are frequent.", "after": ""}],
                    "revised": CLEAN,
                }
            )
        ),
        _answer(json.dumps({"edits": [], "revised": RECORDS[1]["meta"]["corrupted"]})),  # missed the addition
        _answer("The draft is fine."),  # no JSON
        _answer(
            json.dumps(
                {"edits": [{"type": "modify", "before": "hyperchromatic", "after": "pale"}], "revised": CLEAN}
            )
        ),
    ]
    m, _ = score_revise(RECORDS, answers)
    assert m["valid_json_rate"] == 0.75 and m["false_edit_rate"] == 1.0
    assert m["per_kind"]["addition"]["recall"] == 0.0 and m["per_kind"]["deletion"]["recall"] == 0.0
    assert m["per_kind"]["modification"]["recall"] == 1.0 and m["per_kind"]["modification"]["located"] == 0.0
    assert m["per_kind"]["addition"]["precision"] == 0.0  # the only delete was on the clean draft
    assert m["detection_recall"] == pytest.approx(1 / 3, abs=1e-4) and m["fix_rate"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert "| addition | 1 | delete | 0.000 | 0.000 | 0.000 |" in markdown(
        {"agent": "revise", "model": "m", "split": "v", "metrics": m}
    )


def test_rouge_l_is_the_lcs_f1_on_words():
    assert lcs_length(["a", "b", "c", "d"], ["a", "c", "d", "e"]) == 3
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert rouge_l("", "a") == 0.0 and rouge_l("The Cells.", "the cells") == 1.0


def test_describe_hallucination_counts_report_terms_the_reference_lacks():
    recs = [
        {
            "id": "1",
            "meta": {
                "reference": "Glandular adenocarcinoma with scattered lymphocytes.",
                "findings": ["Poorly differentiated adenocarcinoma", "neutrophils in the lumen"],
            },
        }
    ]
    m, rows = score_describe(recs, [_answer("Adenocarcinoma with neutrophils.")])
    assert rows[0]["hallucinated_findings"] == ["neutrophils"] and m["hallucination_rate"] == 1.0
    m, _ = score_describe(recs, [_answer("Glandular adenocarcinoma with scattered lymphocytes.")])
    assert m["hallucination_rate"] == 0.0 and m["rouge_l"] == 1.0


def test_summarize_fit_and_information_kept():
    description = "Glandular adenocarcinoma with hyperchromatic nuclei and scattered lymphocytes."
    recs = [{"id": "1", "meta": {"description": description}}]
    m, _ = score_summarize(recs, [_answer("Glandular adenocarcinoma with scattered lymphocytes.")])
    assert m["fit_rate"] == 1.0 and m["information_kept"] == pytest.approx(
        4 / 5
    )  # 4 of its 5 vocabulary terms
    m, _ = score_summarize(recs, [_answer("word " * 90)])
    assert m["fit_rate"] == 0.0 and m["information_kept"] == 0.0
