"""`pathgen plan`: projections for N slides from a short calibration, offline, never loading the
configured checkpoint nor contacting the configured server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from pathgen.cli import app
from pathgen.cli.plan import table_rows
from pathgen.config import RunConfig
from pathgen.planning.project import make_plan, project

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("items", "cpu_h", "gpu_h", "calls", "tokens")


@pytest.fixture(scope="module")
def listener():
    """A listening socket standing in for the VLM server: any connection attempt is queued."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def _connections(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "220")  # one table row a line
    result = CliRunner().invoke(app, ["plan", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def vllm_plan(tmp_path_factory, listener):
    """examples/vllm.yaml as shipped (checkpoint /path/to/..., missing here), its server pointed at
    the listening socket and an API key variable that is not set."""
    data = yaml.safe_load((ROOT / "examples" / "vllm.yaml").read_text())
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    data["caption"].update(base_url=url, api_key_env="PATHGEN_PLAN_TEST_KEY_NOT_SET")
    data["caption"]["describe"] = {"model": "my-org/describe", "base_url": url}
    folder = tmp_path_factory.mktemp("vllm")
    config = folder / "vllm.yaml"
    config.write_text(yaml.safe_dump(data))
    out = folder / "plan.json"
    with pytest.MonkeyPatch.context() as mp:
        output = _invoke([str(config), "--slides", "7300", "--json", str(out)], mp)
    return output, json.loads(out.read_text()), listener


def test_vllm_plan_prints_the_projection_offline(vllm_plan):
    output, plan, listener = vllm_plan
    ckpt = RunConfig.from_yaml(ROOT / "examples" / "vllm.yaml").embed.encoder.split("@", 1)[1]
    assert not Path(ckpt).exists()  # the configured weights do not exist, and that is no error
    assert _connections(listener) == 0  # the configured server was never contacted
    assert plan["slides"] == 7300
    assert [r["stage"] for r in plan["stages"]] == ["tile", "embed", "select", "caption", "export"]
    text = " ".join(output.split())
    assert f"the checkpoint {ckpt} is not loaded" in text
    assert "ViT-L-14-336" in text and "336 px" in text
    # the published recipe: at most 256 selected a slide, so ~1.87M pairs for 7,300 slides
    assert plan["per_slide"]["selected"] == 256 and plan["pairs"] == 256 * 7300
    caption = plan["stages"][3]
    assert caption["calls"] == pytest.approx(3 * 1.05 * 256 * 7300)
    assert caption["gpu_h"] > 0 and caption["tokens"] > caption["calls"] * 576  # image tokens at least
    embed = plan["stages"][1]
    assert embed["gpu_s_per_item"] > 0 and embed["basis"] == "measured + assumed"
    assert plan["calibration"]["encoder"]["gflops_per_tile"] > 300  # ViT-L/14 at 336 px: ~350 matmul GFLOP
    for line in plan["assumption_lines"]:  # everything assumed is printed
        assert " ".join(line.split()) in text


def test_json_matches_the_table(vllm_plan):
    output, plan, _ = vllm_plan
    lines = output.splitlines()
    for cells in table_rows(plan):
        row = next(line for line in lines if line.strip("│ ").startswith(cells[0] + " "))
        shown = [c.strip() for c in row.strip().strip("│").split("│")]
        assert shown == cells
    totals = plan["totals"]
    assert totals["gpu_h"] == pytest.approx(sum(r["gpu_h"] for r in plan["stages"]))
    assert totals["tokens"] == pytest.approx(plan["stages"][3]["tokens_in"] + plan["stages"][3]["tokens_out"])


def test_demo_plan_scales_linearly_and_takes_bench_json(tmp_path, monkeypatch, vllm_plan):
    bench = tmp_path / "gpu.json"
    bench.write_text(json.dumps({"embed_gpu_tiles_per_s": 500, "vlm_tokens_per_s": 10000}))
    out = tmp_path / "plan.json"
    output = _invoke(
        [
            str(ROOT / "examples" / "demo.yaml"),
            "--slides",
            "10",
            "--json",
            str(out),
            "--bench-json",
            str(bench),
        ],
        monkeypatch,
    )
    small = json.loads(out.read_text())
    assert small["slides"] == 10 and "plan for 10 slides" in output
    embed, caption = small["stages"][1], small["stages"][3]
    assert embed["gpu_s_per_item"] == pytest.approx(1 / 500) and "bench: gpu.json" in embed["source"]
    assert caption["gpu_s_per_item"] == pytest.approx(caption["tokens"] / caption["items"] / 10000)
    assert small["per_slide"]["selected"] == 4  # demo.yaml: per_slide_cap 4
    big = project(small, 7300)  # the same calibration at N = 7300
    for a, b in zip(small["stages"], big["stages"], strict=True):
        for key in METRICS:
            assert b[key] == pytest.approx(a[key] * 730)
    # tiles a slide come from the config and the sample slide alone: the same in every plan
    _, vllm, _ = vllm_plan
    assert small["per_slide"]["tiles"] == vllm["per_slide"]["tiles"]
    assert project(vllm, 10)["stages"][4]["items"] == pytest.approx(vllm["stages"][4]["items"] / 730)


def test_run_directory_gives_measured_counts(tmp_path, slides_dir):
    from pathgen.pipeline import run_pipeline

    cfg = RunConfig.from_yaml(ROOT / "examples" / "demo.yaml")
    cfg = cfg.model_copy(update={"slides": [str(slides_dir / "CMU-1-Small-Region.svs"),
                                            str(slides_dir / "tcga-cr-7395-01a-01-ts1.svs")]})  # fmt: skip
    run = tmp_path / "run"
    run_pipeline(cfg, run, until="select")
    slides = [s for s in pq.read_table(run / "slides.parquet").to_pylist() if s["status"] == "ok"]
    tiles = pq.read_metadata(run / "tiles.parquet").num_rows
    selected = pq.read_metadata(run / "selected.parquet").num_rows
    plan = make_plan(cfg, 10, run=run)
    per = plan["per_slide"]
    assert per["tiles"] == pytest.approx(tiles / len(slides))
    assert per["selected"] == pytest.approx(selected / len(slides))
    assert per["tiles"] != pytest.approx(make_plan(cfg, 10)["per_slide"]["tiles"])  # not the assumption
    assert "measured" in per["source"] and "run" in plan["stages"][3]["source"]
    assert plan["calibration"]["prompts"]["tiles_rendered"] == min(selected, 16)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slides", "0"], "positive number of slides"),
        (["--slides", "5", "--slide-size", "big"], "WIDTHxHEIGHT"),
    ],
)
def test_bad_options_fail_clearly(args, message):
    result = CliRunner().invoke(app, ["plan", str(ROOT / "examples" / "demo.yaml"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_benchmark_json_files_are_read(tmp_path):
    from pathgen.planning.bench import read_bench

    files = {
        "tiling.json": {"grid": [{"dimensions": [50000, 50000], "pathgen_s": 5.0},
                                 {"dimensions": [2220, 2967], "pathgen_s": 0.3}]},
        "selection.json": {"selection": [{"tiles": 100000, "seconds": 20.0},
                                         {"tiles": 1000000, "seconds": 100.0}]},
        "captioning.json": {"config": {}, "results": [{"client_cpu_ms_per_call": 0.5}]},
        "export_throughput.json": {"benchmark": "export_throughput",
                                   "rows": [{"workers": 1, "patches_per_s": 50.0}]},
    }  # fmt: skip
    read = {}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
        read.update(read_bench(tmp_path / name))
    assert read == pytest.approx(
        {
            "tile_s_per_gpx": 5.0 / 2.5,
            "select_s_per_tile": 1e-4,
            "client_cpu_s_per_call": 5e-4,
            "export_s_per_item": 0.02,
        }
    )
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="no throughput the plan can use"):
        read_bench(tmp_path / "other.json")


def test_a_malformed_benchmark_file_is_a_clear_error(tmp_path):
    from pathgen.planning.bench import read_bench

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grid": [{"pathgen_s": 5.0}, {"dimensions": ["a", 1], "pathgen_s": 1}],
                               "selection": [{"tiles": "many", "seconds": 1}],
                               "benchmark": "export_throughput", "rows": ["x", 3]}))  # fmt: skip
    with pytest.raises(ValueError, match="no throughput the plan can use"):
        read_bench(bad)
