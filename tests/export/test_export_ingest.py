"""Ingesting external pairs: formats, bad input, duplicates within and across sources, mixing manifest."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pathgen.export.ingest import ingest
from pathgen.export.mixing import load_manifest
from pathgen.train.argv import resolve_mixture


def _crc(crc_patches: Path, n: int) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(crc_patches.rglob("*.png"))[:n]]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture()
def arch_copy(shared_data, crc_patches, tmp_path):
    """The real ARCH books_set captions.json, with images for its first five records only."""
    captions = shared_data / "captions" / "arch" / "books_set" / "captions.json"
    data = json.loads(captions.read_text())
    images = tmp_path / "arch_images"
    images.mkdir()
    for i, img in enumerate(_crc(crc_patches, 5)):
        img.save(images / f"{data[str(i)]['uuid']}.png")
    return captions, images, data


def test_arch_then_quilt_with_bad_input_and_duplicates(arch_copy, crc_patches, tmp_path):
    captions, images, data = arch_copy
    out = tmp_path / "pairs"
    arch = ingest("arch", captions, out, "arch", images=images, per_shard=2)
    assert arch["done"] == 5 and arch["skipped_by_reason"] == {"missing_image": len(data) - 5}
    index = pq.read_table(out / "arch" / "index.parquet").to_pylist()
    assert index[0]["caption"] == " ".join(data["0"]["caption"].split()) and index[0]["source"] == "arch"

    # A Quilt-style lookup CSV: good rows and every kind of bad row.
    qimg = tmp_path / "quilt"
    qimg.mkdir()
    crc = _crc(crc_patches, 12)
    crc[6].save(qimg / "good1.jpg", quality=95)
    crc[7].save(qimg / "good2.png")
    crc[0].save(qimg / "copy_of_arch0.png")  # same pixels as ARCH record 0: exact, across sources
    crc[7].resize((200, 200)).resize((224, 224)).save(qimg / "near_good2.png")  # near duplicate within
    (qimg / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "outside.png").write_bytes((qimg / "good2.png").read_bytes())
    rows = [
        ("A gland-forming adenocarcinoma.", "good1.jpg"),
        ("Lymphoid aggregate in the submucosa.", "good2.png"),
        ("Same as an ARCH figure.", "copy_of_arch0.png"),
        ("A slightly resized copy.", "near_good2.png"),
        ("Corrupt file.", "corrupt.jpg"),
        ("Missing file.", "nope.jpg"),
        ("   ", "good1.jpg"),
        ("x" * 5000, "good1.jpg"),
        ("Escapes the image root.", "../outside.png"),
    ]
    csv_path = tmp_path / "quilt_1M_lookup.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caption", "image_path", "subset", "pathology"])
        w.writerows([(c, p, "openpath", "['colon']") for c, p in rows])
    quilt = ingest("quilt", csv_path, out, "quilt", images=qimg, weight=2.0)
    assert quilt["done"] == 3
    assert quilt["skipped_by_reason"] == {
        "caption_too_long": 1,
        "corrupt_image": 1,
        "empty_caption": 1,
        "exact_duplicate": 1,
        "missing_image": 1,
        "path_escapes_image_root": 1,
    }
    dups = pq.read_table(out / "quilt" / "duplicates.parquet").to_pylist()
    exact = [d for d in dups if d["kind"] == "exact"]
    assert len(exact) == 1 and exact[0]["other"] == f"arch:{index[0]['key']}"
    near = [d for d in dups if d["kind"] == "near"]
    keys = {r["key"]: r for r in pq.read_table(out / "quilt" / "index.parquet").to_pylist()}
    near_keys = {(d["key"], d["other"]) for d in near}
    assert ("quilt_00000003", "quilt:quilt_00000001") in near_keys or (
        "quilt_00000001",
        "quilt:quilt_00000003",
    ) in near_keys
    assert keys["quilt_00000000"]["caption"] == "A gland-forming adenocarcinoma."

    manifest = yaml.safe_load((out / "mix.yaml").read_text())
    assert [s["name"] for s in manifest["sets"]] == ["arch", "quilt"]
    assert manifest["sets"][0]["shards"] == "arch/shards/{00000..00002}.tar"
    sets = load_manifest(out / "mix.yaml")
    assert sets[1].weight == 2.0 and sets[1].n_samples == 3 and all(Path(s).exists() for s in sets[0].shards)
    data = resolve_mixture(sets)  # what `pathgen train` hands open_clip_train
    assert data.upsampling_factors == "1::1::1::2"  # arch's 3 shards at weight 1, quilt's one at 2
    assert data.num_samples == 8 and data.resampled


def test_dedup_against_a_pathgen_export(crc_patches, tmp_path):
    from export_testkit import crc_pairs

    from pathgen.export.dataset import write_dataset

    export = tmp_path / "run-a" / "export"
    write_dataset(export, iter(crc_pairs(crc_patches, n=3)), title="t", per_shard=10)
    folder = tmp_path / "imgs"
    folder.mkdir()
    (crc_pairs(crc_patches, n=3)[1]).image.save(folder / "same.png")  # the exported patch, re-saved
    _crc(crc_patches, 6)[5].save(folder / "new.png")
    pd_csv = tmp_path / "pairs.csv"
    pd_csv.write_text("file,text\nsame.png,Copy of an exported patch.\nnew.png,A new patch.\n")
    out = tmp_path / "pairs"
    report = ingest("table", pd_csv, out, "mine", images=folder, against=[export])
    assert report["done"] == 1 and report["skipped_by_reason"] == {"exact_duplicate": 1}
    dups = pq.read_table(out / "mine" / "duplicates.parquet").to_pylist()
    assert dups[0]["kind"] == "exact" and dups[0]["other"].startswith("run-a:")
    # --against is for duplicate detection only: stage 2 must not train on stage 1's pairs again
    assert [s.name for s in load_manifest(out / "mix.yaml")] == ["mine"]
    ingest("table", pd_csv, out, "mine", images=folder, against=[export], mix_against=True)
    assert [s.name for s in load_manifest(out / "mix.yaml")] == ["mine", "run-a"]


def _table(tmp_path: Path, crc_patches: Path, name: str, n: int, start: int = 0) -> Path:
    """A CSV of ``n`` real patches in ``tmp_path/name_imgs`` with paths relative to that folder."""
    folder = tmp_path / f"{name}_imgs"
    folder.mkdir()
    rows = ["file,text"]
    for i, img in enumerate(_crc(crc_patches, start + n)[start:]):
        img.save(folder / f"p{i}.png")
        rows.append(f"p{i}.png,Patch {i} of {name}.")
    csv_path = tmp_path / f"{name}.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


def test_mix_yaml_is_relative_to_its_folder_and_train_reads_it(crc_patches, tmp_path, monkeypatch):
    import shutil

    from pathgen.train.argv import resolve_data

    csv_path = _table(tmp_path, crc_patches, "mine", 3)
    monkeypatch.chdir(tmp_path)
    ingest("table", csv_path, Path("pairs"), "mine", images=tmp_path / "mine_imgs", per_shard=2)
    doc = yaml.safe_load((tmp_path / "pairs" / "mix.yaml").read_text())
    assert doc["sets"][0]["shards"] == "mine/shards/{00000..00001}.tar"  # not pairs/mine/...
    moved = tmp_path / "elsewhere" / "pairs"
    shutil.move(tmp_path / "pairs", moved)
    data = resolve_data(str(moved / "mix.yaml"))  # the reader `pathgen train` uses
    assert data.num_samples == 3 and data.resampled
    assert data.train_data.split("::") == [str(moved / "mine" / "shards" / f"0000{i}.tar") for i in (0, 1)]


def test_failed_ingest_writes_nothing_and_says_why(crc_patches, tmp_path):
    from typer.testing import CliRunner

    from pathgen.cli import app

    out = tmp_path / "pairs"
    good = _table(tmp_path, crc_patches, "good", 2)
    assert ingest("table", good, out, "table", images=tmp_path / "good_imgs")["done"] == 2
    manifest = (out / "mix.yaml").read_text()
    shard = (out / "table" / "shards" / "00000.tar").read_bytes()

    # the same file names, but the CSV lies in another folder and no --images is given
    bad = tmp_path / "sub" / "bad.csv"
    bad.parent.mkdir()
    bad.write_text(good.read_text())
    result = CliRunner().invoke(app, ["ingest", "table", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "error:" in text and "missing_image 2" in text and "nothing was written" in text
    assert f"resolved against {bad.parent}" in text and "--images" in text
    assert (out / "mix.yaml").read_text() == manifest, "no entry for an empty set"
    assert (out / "table" / "shards" / "00000.tar").read_bytes() == shard, "the earlier set is kept"

    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(app, ["ingest", "table", str(bad), "--out", str(fresh)])
    assert result.exit_code == 1 and not (fresh / "mix.yaml").exists() and not (fresh / "table").exists()


def test_reingest_replaces_and_says_so_when_the_source_differs(crc_patches, tmp_path):
    from typer.testing import CliRunner

    from pathgen.cli import app

    out = tmp_path / "pairs"
    first = _table(tmp_path, crc_patches, "first", 2)
    second = _table(tmp_path, crc_patches, "second", 3, start=2)

    def run(csv_path: Path) -> str:
        images = csv_path.parent / f"{csv_path.stem}_imgs"
        result = CliRunner().invoke(
            app, ["ingest", "table", str(csv_path), "--images", str(images), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "replaced" not in run(first)
    assert "replaced" not in run(first), "re-running the same ingest is quiet and idempotent"
    text = run(second)
    assert "note: replaced the earlier set 'table'" in text and str(first.resolve()) in text
    assert [(s.name, s.n_samples) for s in load_manifest(out / "mix.yaml")] == [("table", 3)]


def test_wds_and_parquet_never_write_outside(crc_patches, tmp_path):
    imgs = _crc(crc_patches, 3)

    def jpeg(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG")
        return buf.getvalue()

    src = tmp_path / "src.tar"
    with tarfile.open(src, "w") as tar:
        for name, data in [
            ("ok1.jpg", jpeg(imgs[0])),
            ("ok1.txt", b"Caption one."),
            ("../evil.jpg", jpeg(imgs[1])),
            ("../evil.txt", b"escape"),
            ("/tmp/abs.txt", b"absolute"),
            ("notext.jpg", jpeg(imgs[2])),
            ("ok2.png", b"garbage"),
            ("ok2.txt", b"Corrupt image."),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    before = _tree(tmp_path)
    report = ingest("wds", src, out, "old", per_shard=10)
    assert report["done"] == 1
    assert report["skipped_by_reason"] == {"corrupt_image": 1, "empty_caption": 1, "unsafe_member_name": 3}
    created = _tree(tmp_path) - before
    assert all(p.startswith("out") for p in created), created
    assert not (tmp_path / "evil.jpg").exists()

    table = pa.table(
        {"img": [{"bytes": jpeg(imgs[2]), "path": "a.jpg"}], "text": ["From a parquet with bytes."]}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    rep = ingest("table", tmp_path / "t.parquet", out, "hf", image_col="img", text_col="text")
    assert rep["done"] == 1 and rep["exact_duplicates"] == 0
    with pytest.raises(ValueError, match="columns: img, text"):
        ingest("table", tmp_path / "t.parquet", out, "bad", image_col="nope")
    assert not (out / "bad").exists(), "bad configuration fails before anything is written"


def _shard_meta(folder: Path) -> list[dict]:
    metas = []
    for tar_path in sorted((folder / "shards").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            metas += [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    return metas


def test_table_image_paths_stay_inside_the_image_folder(crc_patches, tmp_path):
    """Absolute paths elsewhere need --allow-absolute-paths; `..` and symlinks out are always refused;
    refusals are per-row skips; what is recorded is relative to the image folder."""
    from typer.testing import CliRunner

    from pathgen.cli import app

    imgs = _crc(crc_patches, 5)
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    imgs[0].save(root / "sub" / "a.png")
    imgs[1].save(root / "b.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    imgs[2].save(outside / "private.png")
    imgs[3].save(outside / "linked.png")
    (root / "link.png").symlink_to(outside / "linked.png")
    rows = [
        ("Relative, with a detour.", "sub/../sub/a.png"),
        ("Absolute, inside the image folder.", str(root / "b.png")),
        ("Absolute, outside the image folder.", str(outside / "private.png")),
        ("A system file.", "/etc/passwd"),
        ("Climbs out.", "../elsewhere/private.png"),
        ("A symlink pointing out.", "link.png"),
    ]
    csv_path = tmp_path / "table.csv"
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerows([("image", "caption"), *[(p, c) for c, p in rows]])
    out = tmp_path / "pairs"

    report = ingest("table", csv_path, out, "t", images=root)
    assert report["done"] == 2
    assert report["skipped_by_reason"] == {"absolute_path_refused": 2, "path_escapes_image_root": 2}
    recorded = sorted(m["extra_image_path"] for m in _shard_meta(out / "t"))
    assert recorded == ["b.png", "sub/a.png"], "only paths relative to the image folder are recorded"
    assert str(tmp_path) not in (out / "t" / "index.parquet").read_bytes().decode("latin-1")

    allowed = ingest(
        "table", csv_path, out, "t2", images=root, allow_absolute_paths=True, keep_exact_duplicates=True
    )
    assert allowed["done"] == 3  # private.png read where it is; /etc/passwd is no image
    assert allowed["skipped_by_reason"] == {"corrupt_image": 1, "path_escapes_image_root": 2}

    # The CLI: refused rows are counted, the run goes on; all refused -> says how to allow them.
    only_abs = tmp_path / "abs.csv"
    only_abs.write_text(f"image,caption\n{outside / 'private.png'},Outside.\n")
    args = ["ingest", "table", str(only_abs), "--images", str(root), "--out", str(out), "--name", "a"]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "absolute_path_refused" in text and "--allow-absolute-paths" in text
    result = CliRunner().invoke(app, [*args, "--allow-absolute-paths", "--keep-exact-duplicates"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "a" / "report.json").read_text())["done"] == 1


def test_arch_images_symlinked_out_of_the_folder_are_refused(crc_patches, tmp_path):
    imgs = _crc(crc_patches, 2)
    images = tmp_path / "images"
    images.mkdir()
    imgs[0].save(images / "u0.png")
    imgs[1].save(tmp_path / "secret.png")
    (images / "u1.png").symlink_to(tmp_path / "secret.png")
    captions = {str(i): {"caption": f"Figure {i}.", "uuid": f"u{i}"} for i in range(2)}
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    report = ingest("arch", tmp_path / "captions.json", tmp_path / "pairs", "arch", images=images)
    assert report["done"] == 1 and report["skipped_by_reason"] == {"path_escapes_image_root": 1}
