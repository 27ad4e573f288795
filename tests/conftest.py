"""Shared fixtures: where the real data lives, and skips that say why when it is absent.

Outside CI a missing shared data folder skips the tests that read it. Under CI (``CI=true``) it
fails the run instead, naming the folders searched: a CI run that skipped every real-data test
would otherwise still be green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pathgen.sample_data import candidates
from pathgen.sample_data import shared_data as find_shared_data  # the fixture below takes the name

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = find_shared_data() or candidates()[0]


def in_ci() -> bool:
    """True under CI (``CI=true``, as GitHub Actions, GitLab and most runners set it; also 1/yes)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def pytest_sessionstart(session: pytest.Session) -> None:
    if in_ci() and find_shared_data() is None:
        looked = ", ".join(str(p) for p in candidates())
        raise pytest.UsageError(
            f"CI={os.environ['CI']} but the shared data folder is missing (looked for: {looked}). "
            "CI must run the real-data tests rather than skip them: put the data at ../shared/data "
            "beside the clone or set PATHGEN_SHARED_DATA."
        )


def _need(path: Path) -> Path:
    if not path.exists():
        if in_ci():
            pytest.fail(f"real data not found at {path} (CI must have it; set PATHGEN_SHARED_DATA)")
        pytest.skip(f"real data not found at {path} (set PATHGEN_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def slides_dir(shared_data: Path) -> Path:
    return _need(shared_data / "slides")


@pytest.fixture(scope="session")
def cmu_small(slides_dir: Path) -> Path:
    return _need(slides_dir / "CMU-1-Small-Region.svs")


@pytest.fixture(scope="session")
def tcga_jp2k(slides_dir: Path) -> Path:
    return _need(slides_dir / "tcga-cr-7395-01a-01-ts1.svs")


@pytest.fixture(scope="session")
def dicom_slide(slides_dir: Path) -> Path:
    return _need(slides_dir / "TCGA-XK-AAJU-small.dcm")


@pytest.fixture(scope="session")
def crc_patches(shared_data: Path) -> Path:
    return _need(shared_data / "patches" / "crc-val-he-7k")


@pytest.fixture(scope="session")
def unlabeled_patches(shared_data: Path) -> Path:
    return _need(shared_data / "patches" / "unlabeled")


@pytest.fixture(scope="session")
def pathgen_captions(shared_data: Path) -> Path:
    return _need(shared_data / "captions" / "pathgen-1.6m-sample.json")


@pytest.fixture(scope="session")
def demo_run_template(slides_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `pathgen demo` run (tiny models, real sample slides), made once per session.

    Read-only by convention: a test that changes a run copies it first (``shutil.copytree``).
    """
    from typer.testing import CliRunner

    from pathgen.cli import app

    out = tmp_path_factory.mktemp("demo-template") / "run"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--slides", str(slides_dir)])
    assert result.exit_code == 0, result.output
    return out
