"""Export with object storage: patches read from slides in S3, the dataset uploaded to S3.

A real S3 server on 127.0.0.1 (moto); the real sample slide uploaded to it; a captioned run made
through the fake OpenAI server. The export from the slide's URL must give the bytes of the export
from the local file, and the upload must be whole (mark last), resumable and without stale objects.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_testkit import captioned_run
from typer.testing import CliRunner

from pathgen.config import ExportConfig
from pathgen.export.dataset import MARKER
from pathgen.export.stage import ExportError, export_stage
from pathgen.export.upload import upload_dataset
from pathgen.rundir import RunDir, write_parquet
from s3server import FAKE_ENV, Bucket, make_bucket

CFG = ExportConfig(samples_per_shard=3, image_size=96, gallery_max_items=4)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return make_bucket(monkeypatch)


@pytest.fixture(scope="module")
def base_run(cmu_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A captioned run over 8 tiles of the sample slide (local path); tests work on copies."""
    return captioned_run(tmp_path_factory.mktemp("s3-export") / "run", cmu_small, n_tiles=8).root


def _copy(base: Path, dest: Path, path: str) -> RunDir:
    """A copy of the run whose slide is at ``path``, read with tiffslide (the reader of URLs)."""
    shutil.copytree(base, dest)
    run = RunDir(dest)
    rows = pq.read_table(run.slides).to_pylist()
    for row in rows:
        row.update(path=path, reader="tiffslide")
    write_parquet(rows, run.slides)
    return run


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _local_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def test_export_reads_slides_from_s3_and_uploads_resumably(
    bucket: Bucket, base_run: Path, cmu_small: Path, tmp_path: Path
) -> None:
    url = bucket.put(cmu_small, f"slides/{cmu_small.name}")
    local = _copy(base_run, tmp_path / "local" / "run", str(cmu_small))  # same name: the card says it
    remote = _copy(base_run, tmp_path / "remote" / "run", url)
    export_stage(local, CFG)
    dest = bucket.url("datasets/demo")
    cfg = CFG.model_copy(update={"upload_to": dest})
    summary = export_stage(remote, cfg)
    assert summary["pairs"] == 8 and summary["failed"] == 0
    assert _digests(remote.export) == _digests(local.export)  # patches from S3 = from the file

    upload = summary["upload"]
    files = _local_sizes(remote.export)
    assert upload["complete"] and upload["uploaded"] == len(files) and upload["skipped"] == 0
    assert bucket.keys("datasets/demo") == files  # every object whole, the mark included
    assert any(k.startswith("shards/") and k.endswith(".tar") for k in files)

    # Up to date: nothing is exported or uploaded again.
    again = export_stage(remote, cfg)
    assert again["up_to_date"] and again["upload"]["uploaded"] == 0
    assert again["upload"]["skipped"] == len(files)

    # An interrupted upload (a shard and the mark missing) resumes with only what is missing.
    bucket.fs.rm_file(f"{bucket.name}/datasets/demo/shards/00001.tar")
    bucket.fs.rm_file(f"{bucket.name}/datasets/demo/{MARKER}")
    resumed = export_stage(remote, cfg)["upload"]
    assert resumed["uploaded"] == 2 and resumed["skipped"] == len(files) - 2
    assert bucket.keys("datasets/demo") == files

    # A new export with fewer shards: changed objects replaced, stale shards deleted, others kept.
    bucket.put(cmu_small, "datasets/demo-notes/keep.svs")  # beside the prefix: never touched
    fewer = export_stage(remote, cfg.model_copy(update={"samples_per_shard": 8}))
    assert fewer["upload"]["complete"] and fewer["upload"]["deleted"] >= 1
    assert bucket.keys("datasets/demo") == _local_sizes(remote.export)
    assert "keep.svs" in bucket.keys("datasets/demo-notes")

    stored = b"".join(p.read_bytes() for p in remote.root.rglob("*") if p.is_file())
    for secret in FAKE_ENV.values():
        if secret != "us-east-1":
            assert secret.encode() not in stored


def test_upload_destination_is_checked_before_work(bucket: Bucket, base_run: Path, tmp_path: Path) -> None:
    run = _copy(base_run, tmp_path / "run", str(pq.read_table(base_run / "slides.parquet")["path"][0]))
    cfg = CFG.model_copy(update={"upload_to": "s3://no-such-bucket-pathgen/x"})
    with pytest.raises(ExportError, match="does not exist"):
        export_stage(run, cfg)
    assert not run.export.exists()
    bucket.put(base_run / "slides.parquet", "mine/notes.parquet")
    cfg = CFG.model_copy(update={"upload_to": bucket.url("mine")})
    with pytest.raises(ExportError, match=r"did not write \(notes\.parquet\)"):
        export_stage(run, cfg)  # a prefix with someone else's objects is never written into
    assert bucket.keys("mine") == {"notes.parquet": (base_run / "slides.parquet").stat().st_size}
    with pytest.raises(ValueError, match="URL"):
        ExportConfig(upload_to="/local/folder")
    with pytest.raises(ValueError, match="credentials"):
        ExportConfig(upload_to="s3://key:secret@bucket/x")


def test_upload_to_a_filesystem_without_atomic_put_leaves_no_partial(tmp_path: Path) -> None:
    """memory:// (fsspec's in-memory filesystem) has no atomic put: temp name, then move."""
    import fsspec

    folder = tmp_path / "ds"
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "00000.tar").write_bytes(b"x" * 1000)
    (folder / "index.parquet").write_bytes(b"y" * 10)
    (folder / MARKER).write_text("{}")
    state = tmp_path / "state"
    result = upload_dataset(folder, "memory://pathgen-test/ds", state)
    fs = fsspec.filesystem("memory")
    found = sorted(p.rsplit("/ds/", 1)[1] for p in fs.find("/pathgen-test/ds"))
    assert result["complete"] and found == [MARKER, "index.parquet", "shards/00000.tar"]
    assert upload_dataset(folder, "memory://pathgen-test/ds", state)["skipped"] == 3


def test_export_cli_uploads_with_out_url(bucket: Bucket, base_run: Path, tmp_path: Path) -> None:
    from pathgen.cli import app

    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    args = ["export", str(run), "--image-size", "96", "--samples-per-shard", "4"]
    result = CliRunner().invoke(app, [*args, "--out", bucket.url("cli")])
    assert result.exit_code == 0, result.output
    assert "uploaded to s3://" in result.output and "complete" in result.output
    assert MARKER in bucket.keys("cli")
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "URL" in result.output
    released = ["export", "--from-pathgen-json", str(run / "slides.parquet"), "--slides", str(tmp_path)]
    result = CliRunner().invoke(app, [*released, "--out", bucket.url("x")])
    assert result.exit_code == 2 and "not a URL" in result.output
