"""The attribute-prompt library and report findings."""

from __future__ import annotations

import json

import pytest

from pathgen.selection.findings import split_findings
from pathgen.selection.library import TCGA_PROJECTS, bundled_library, load_library, normalise_project


def test_every_tcga_project_has_at_least_15_distinct_prompts():
    lib = bundled_library()
    assert len(TCGA_PROJECTS) == 33
    assert set(lib.projects) == {f"TCGA-{p}" for p in TCGA_PROJECTS}
    all_prompts = []
    for key, entry in lib.projects.items():
        distinct = {p.lower() for p in entry.prompts}
        assert len(distinct) >= 15, key
        assert entry.name, key
        assert all(3 <= len(p.split()) <= 20 for p in entry.prompts), key  # fits a 77-token context
        all_prompts += entry.prompts
    assert len(set(all_prompts)) > 0.95 * len(all_prompts)  # written per project, not copied around


def test_project_names_are_normalised():
    lib = bundled_library()
    assert normalise_project("brca") == normalise_project("TCGA_BRCA") == "TCGA-BRCA"
    assert normalise_project(" my-cohort ") == "my-cohort"
    assert normalise_project(None) is None and normalise_project(float("nan")) is None
    assert lib.prompts_for("luad") == lib.prompts_for("TCGA-LUAD") != []
    assert lib.prompts_for("unknown") == [] and lib.prompts_for(None) == []


def test_user_file_adds_and_replaces(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("projects:\n  BRCA:\n    prompts: [my breast prompt one]\n  my-cohort: [cohort prompt]\n")
    merged = load_library(path)
    brca = merged.prompts_for("TCGA-BRCA")
    assert brca[-1] == "my breast prompt one" and len(brca) == len(bundled_library().prompts_for("BRCA")) + 1
    assert merged.prompts_for("my-cohort") == ["cohort prompt"]
    replaced = load_library(path, replace=True)
    assert replaced.prompts_for("BRCA") == ["my breast prompt one"]
    assert replaced.prompts_for("LUAD") == bundled_library().prompts_for("LUAD")
    as_json = tmp_path / "mine.json"
    as_json.write_text(json.dumps({"KIRC": ["clear cells in nests"]}))
    assert load_library(as_json).prompts_for("kirc")[-1] == "clear cells in nests"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "must be a mapping"),
        ("projects:\n  BRCA: {prompts: []}\n", "invalid prompt file"),
        ("projects:\n  BRCA: {prompts: ['ok prompt'], colour: red}\n", "invalid prompt file"),
        ("projects: [\n", "not valid"),
    ],
)
def test_bad_user_files_fail_before_work(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_library(path)
    with pytest.raises(FileNotFoundError):
        load_library(tmp_path / "missing.yaml")


def test_findings_split_and_clean():
    report = """SPECIMEN: A. LEFT BREAST, MODIFIED RADICAL MASTECTOMY:
FINAL DIAGNOSIS:
A. - Invasive ductal carcinoma, Nottingham grade 3; tumor size 2.5 cm.
- Ductal carcinoma in situ, solid and cribriform types with comedo necrosis.
* Lymphovascular invasion is present. Margins are negative for carcinoma.
- INVASIVE DUCTAL CARCINOMA, NOTTINGHAM GRADE 3.
Gross description: The specimen is received fresh labeled with the patient's name.
It measures 15 x 10 x 4 cm.
Electronically signed by Dr. Smith.
ER: positive
1) Metastatic carcinoma in two of fifteen lymph nodes
"""
    assert split_findings(report) == [
        "Invasive ductal carcinoma, Nottingham grade 3",
        "Ductal carcinoma in situ, solid and cribriform types with comedo necrosis",
        "Lymphovascular invasion is present",
        "Margins are negative for carcinoma",
        "Metastatic carcinoma in two of fifteen lymph nodes",
    ]
    assert split_findings(None) == split_findings("") == split_findings(float("nan")) == []
    assert len(split_findings(report, max_findings=2)) == 2
