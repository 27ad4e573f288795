"""The sample shipped in the package (licences, the `pathgen:sample` spec), where the shared data is
searched, and the CI rule that a missing shared data folder fails the run instead of skipping."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pathgen import sample_data
from pathgen.config import RunConfig
from pathgen.slides.manifest import expand_inputs

ROOT = Path(__file__).resolve().parents[1]
OWN_FILES = {"NOTICE.md", "manifest.csv"}  # pathgen's own files in the sample folder


def _notice_rows() -> dict[str, list[str]]:
    """``{file: [source, licence, attribution]}`` from the table of NOTICE.md."""
    rows: dict[str, list[str]] = {}
    for line in (sample_data.sample_path("NOTICE.md")).read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([^`]+)` \|(.*)\|\s*$", line)
        if m:
            assert m.group(1) not in rows, f"two lines for {m.group(1)}"
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_every_packaged_file_has_one_licence_line():
    root = sample_data.sample_root()
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - OWN_FILES
    rows = _notice_rows()
    assert set(rows) == files and "slides/CMU-1-Small-Region.svs" in files
    assert sum(f.endswith(".png") for f in files) == 8  # one CRC patch per class
    for name, (source, licence, attribution) in rows.items():
        assert source and attribution, name
        if name.endswith(".svs"):
            assert licence == "CC0-1.0", name
        else:  # CC-BY-4.0 requires attribution: the dataset's authors and its record
            assert licence == "CC-BY-4.0" and "Kather" in attribution and "1214456" in source, name
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 4_000_000


def test_packaged_files_are_the_shared_originals(shared_data):
    """Redistributed unmodified: byte for byte the files of the shared data folder."""
    for name in _notice_rows():
        assert sample_data.sample_path(name).read_bytes() == (shared_data / name).read_bytes(), name


def test_sample_spec_names_the_packaged_slide(tmp_path):
    records = expand_inputs(["pathgen:sample"])
    assert [r["slide_id"] for r in records] == ["CMU-1-Small-Region"]
    assert records[0]["input_error"] is None and records[0]["report"]
    assert Path(records[0]["path"]) == sample_data.sample_root() / "slides" / "CMU-1-Small-Region.svs"
    # A config keeps the spec as written (not a path beside the config file), and the example uses it.
    (tmp_path / "run.yaml").write_text("slides: [pathgen:sample, my.svs]\nout: runs/x\n")
    cfg = RunConfig.from_yaml(tmp_path / "run.yaml")
    assert cfg.slides == ["pathgen:sample", str(tmp_path / "my.svs")]
    assert RunConfig.from_yaml(ROOT / "examples" / "demo.yaml").slides == ["pathgen:sample"]


def test_shared_data_is_searched_only_near_the_checkout_or_the_cwd(tmp_path, monkeypatch):
    """No absolute path of one machine: without $PATHGEN_SHARED_DATA every place searched is
    relative to the checkout or the working directory."""
    monkeypatch.delenv(sample_data.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    repo = Path(sample_data.__file__).resolve().parents[2]
    allowed = {base / "shared" / "data" for base in (repo.parent, tmp_path.parent, tmp_path)}
    assert set(sample_data.candidates()) <= allowed
    monkeypatch.setenv(sample_data.ENV, str(tmp_path / "elsewhere"))
    assert sample_data.candidates() == [tmp_path / "elsewhere"]


# --- CI=true: a missing shared data folder fails the run ------------------------------------------


def _pytest_with_conftest(tmp_path: Path, env_over: dict[str, str | None]) -> subprocess.CompletedProcess:
    """Run pytest on a one-test folder that uses the real conftest.py and a real-data fixture."""
    tests = tmp_path / "suite"
    tests.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    (tests / "test_needs_data.py").write_text(
        "def test_reads_the_slide(cmu_small):\n    assert cmu_small.stat().st_size > 1_000_000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    for key, value in env_over.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_fails_when_the_shared_data_folder_is_missing(tmp_path):
    missing = tmp_path / "no-such-data"
    ci = _pytest_with_conftest(tmp_path, {"CI": "true", sample_data.ENV: str(missing)})
    out = ci.stdout + ci.stderr
    assert ci.returncode != 0 and str(missing) in out and "shared data folder is missing" in out, out

    local = _pytest_with_conftest(tmp_path, {"CI": None, sample_data.ENV: str(missing)})
    out = local.stdout + local.stderr
    assert local.returncode == 0 and "1 skipped" in out and str(missing) in out, out


def test_ci_runs_the_real_data_tests_when_the_folder_is_there(tmp_path):
    data = tmp_path / "data"
    (data / "slides").mkdir(parents=True)
    shutil.copy(sample_data.sample_path("slides", "CMU-1-Small-Region.svs"), data / "slides")
    ci = _pytest_with_conftest(tmp_path, {"CI": "true", sample_data.ENV: str(data)})
    assert ci.returncode == 0 and "1 passed" in ci.stdout, ci.stdout + ci.stderr
