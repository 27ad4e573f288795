"""Captioning engine throughput and client CPU against a latency-simulating OpenAI-compatible server.

The server (``pathgen.engine.fakeserver``) runs in its own process, answers after a latency drawn
uniformly from [--latency-min, --latency-max] and computes at most --server-concurrency answers at
once, like a GPU server with a fixed batch. The client is the real ``caption_stage``: real tiles read
from CMU-1-Small-Region.svs, real JPEG data URLs, real journal. Baseline, in the same run: the ideal
throughput C / mean latency (the server never idle). Reported: achieved / ideal (goal >= 0.95) and
client CPU per call (process CPU time / calls, goal <= 1 ms), for clean runs and for a run that is
SIGKILLed midway and resumed (no journalled call may be repeated).

Transports (issue 9, item 19): the clean run is repeated ``--repeat`` times for each of
``--transports`` (native HTTP/1.1 pool, aiohttp), alternating, against the same server under the
same load; reported per transport: the median CPU per call and the median ratio to the first
transport in the same repetition (robust to the load of a shared machine).

Structured output (item 18): ``--reask-patches`` tiles are captioned with ``structured_output``
auto (the server enforces the revise schema), off (prompt only: the fake model answers prose for
``--invalid-json-rate`` of revise calls), and auto against a second server that rejects
``response_format`` (fallback); reported: revise re-asks per revise row.

    python benchmarks/captioning.py --patches 1000 --server-concurrency 256 --skip-kill
    python benchmarks/captioning.py --patches 10000 --server-concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pathgen.sample_data import candidates, shared_data

ROOT = Path(__file__).resolve().parents[1]
SLIDE = (shared_data() or candidates()[0]) / "slides" / "CMU-1-Small-Region.svs"


def start_server(args: argparse.Namespace, *extra: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "pathgen.engine.fakeserver",
        "--latency",
        str(args.latency_min),
        str(args.latency_max),
        "--concurrency",
        str(args.server_concurrency),
        "--seed",
        "0",
        "--invalid-json-rate",
        str(args.invalid_json_rate),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def server_stats(base_url: str, ids: bool = False) -> dict[str, Any]:
    req = urllib.request.Request(base_url.replace("/v1", "/stats"), headers={"X-Stats": "ids" if ids else ""})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def make_run(root: Path, n: int, size: int = 224, step: int = 16) -> Any:
    """``n`` distinct real tiles of CMU-1-Small-Region (overlapping grid, so 10,000+ ids exist)."""
    from pathgen.rundir import RunDir, write_parquet

    run = RunDir(root).ensure()
    write_parquet(
        [{"slide_id": "cmu", "path": str(SLIDE), "project": "TCGA-SKCM", "report": None}], run.slides
    )
    rows = []
    for y in range(0, 2967 - size, step):
        for x in range(0, 2220 - size, step):
            rows.append(
                {
                    "tile_id": f"cmu:{x}:{y}:{size}",
                    "slide_id": "cmu",
                    "x": x,
                    "y": y,
                    "size": size,
                    "reason": "cluster",
                    "score": 0.0,
                    "cluster": 0,
                    "prompt": None,
                }
            )
            if len(rows) == n:
                write_parquet(rows, run.selected)
                return run
    raise ValueError(f"at most {len(rows)} distinct tiles at step {step}")


def caption_cfg(
    args: argparse.Namespace, base_url: str, transport: str = "native", structured: str = "auto"
) -> Any:
    from pathgen.config import CaptionConfig

    return CaptionConfig(
        model="bench-vlm",
        base_url=base_url,
        concurrency=args.client_concurrency,
        image_size=args.image_size,
        timeout_s=60,
        transport=transport,
        structured_output=structured,
    )


def warm_up() -> None:
    """Pay one-time costs (importing open_clip for the token counter, opening the slide) before
    the CPU clock starts: they are per process, not per call."""
    from pathgen.agents.fit import clip_tokenizer
    from pathgen.slides import read_tile

    clip_tokenizer()
    read_tile(str(SLIDE), 0, 0, 224, out_size=224)


def measured_run(
    run: Any,
    args: argparse.Namespace,
    base_url: str,
    label: str,
    transport: str = "native",
    structured: str = "auto",
) -> dict[str, Any]:
    from pathgen.agents.stage import caption_stage
    from pathgen.engine.journal import Journal

    warm_up()
    before = server_stats(base_url)
    times0 = os.times()
    cpu0 = time.process_time()
    loader = None
    if args.image_source == "constant":  # engine cost alone: one pre-encoded image for every tile
        from PIL import Image

        from pathgen.models.generators import ImagePart

        part = ImagePart(Image.new("RGB", (args.image_size, args.image_size), (200, 120, 170)))
        part.data_url(args.image_size)
        loader = lambda task: part  # noqa: E731
    cfg = caption_cfg(args, base_url, transport, structured)
    summary = caption_stage(run, cfg, progress=args.progress, image_loader=loader)
    cpu = time.process_time() - cpu0
    times1 = os.times()
    after = server_stats(base_url)
    with Journal(run.journal) as journal:
        revise = [r for r in journal.rows() if r["agent"] == "revise"]
    calls = after["ok"] - before["ok"]
    mean_latency = (after["delay_sum"] - before["delay_sum"]) / max(1, calls)
    ideal = args.server_concurrency / mean_latency if mean_latency else float("nan")
    achieved = calls / summary["elapsed_s"]
    return {
        "run": label,
        "transport": transport,
        "structured_output": structured,
        "tiles_done": summary["done"],
        "tiles_skipped": summary["skipped"],
        "failed": summary["failed"],
        "calls": calls,
        "elapsed_s": summary["elapsed_s"],
        "mean_latency_s": round(mean_latency, 4),
        "calls_per_s": round(achieved, 2),
        "ideal_calls_per_s": round(ideal, 2),
        "throughput_ratio": round(achieved / ideal, 4),
        "client_cpu_ms_per_call": round(1000 * cpu / max(1, calls), 3),
        "user_ms_per_call": round(1000 * (times1.user - times0.user) / max(1, calls), 3),
        "sys_ms_per_call": round(1000 * (times1.system - times0.system) / max(1, calls), 3),
        "server_max_in_flight": after["max_in_flight"],
        "revise_rows": len(revise),
        "revise_reask_rate": round(sum(r["reasks"] or 0 for r in revise) / max(1, len(revise)), 4),
        "revise_rejected": sum(r["status"] == "rejected" for r in revise),
        "structured_requests": after["structured"] - before["structured"],
        "schema_rejected": after["schema_rejected"] - before["schema_rejected"],
    }


def kill_and_resume(args: argparse.Namespace, base_url: str, root: Path) -> dict[str, Any]:
    """`pathgen caption` in a subprocess, SIGKILL at ~half the journal, resume in-process."""
    import sqlite3

    from pathgen.config import RunConfig
    from pathgen.engine.journal import Journal

    run = make_run(root / "killed", args.patches)
    config = root / "killed.yaml"  # the same caption settings as the resumed run, so the same keys
    config.write_text(RunConfig(caption=caption_cfg(args, base_url)).to_yaml())
    cmd = [
        sys.executable,
        "-c",
        "from pathgen.cli import main; main()",
        "caption",
        str(run.root),
        "--config",
        str(config),
        "--no-progress",
    ]
    ids_start = len(server_stats(base_url, ids=True)["ok_ids"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = int(args.patches * 3 * args.kill_at)
    while proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(run.journal, timeout=1) as db:
                if db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] >= target:
                    break
        except sqlite3.Error:
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Journal(run.journal) as journal:
        journalled = {r["key"] for r in journal.rows()}
    ids_killed_run = server_stats(base_url, ids=True)["ok_ids"][ids_start:]
    in_flight_lost = len(set(ids_killed_run) - journalled)
    result = measured_run(run, args, base_url, "resumed after kill -9")
    new_ids = server_stats(base_url, ids=True)["ok_ids"][ids_start + len(ids_killed_run) :]
    with Journal(run.journal) as journal:
        rows = journal.rows()
    result.update(
        journalled_at_kill=len(journalled),
        repeated_journalled_calls=len(journalled & set(new_ids)),
        answered_but_lost_in_flight=in_flight_lost,
        journal_rows=len(rows),
        unique_tile_agent=len({(r["tile_id"], r["agent"]) for r in rows}),
    )
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def transport_summary(results: list[dict[str, Any]], transports: list[str]) -> list[dict[str, Any]]:
    """Per transport: median/min/max CPU per call and the median ratio to the first transport's run
    of the same repetition (a peer under the same load)."""
    peer = {r["repetition"]: r["client_cpu_ms_per_call"] for r in results if r["transport"] == transports[0]}
    rows = []
    for t in transports:
        runs = [r for r in results if r["transport"] == t]
        cpu = [r["client_cpu_ms_per_call"] for r in runs]
        ratios = [
            r["client_cpu_ms_per_call"] / peer[r["repetition"]] for r in runs if peer.get(r["repetition"])
        ]
        rows.append(
            {
                "transport": t,
                "runs": len(runs),
                "cpu_ms_per_call_median": round(median(cpu), 3),
                "cpu_ms_per_call_min": round(min(cpu), 3),
                "cpu_ms_per_call_max": round(max(cpu), 3),
                f"ratio_to_{transports[0]}_median": round(median(ratios), 3),
                "throughput_ratio_median": round(median([r["throughput_ratio"] for r in runs]), 4),
                "meets_1ms_goal": median(cpu) <= 1.0,
            }
        )
    return rows


def reask_runs(args: argparse.Namespace, base_url: str, workdir: Path) -> list[dict[str, Any]]:
    """Revise re-ask rate with structured output (auto, server enforces the schema), without (off),
    and auto against a server that rejects response_format (falls back to the prompt)."""
    n = args.reask_patches
    results = [
        measured_run(
            make_run(workdir / "reask-auto", n), args, base_url, "structured auto", structured="auto"
        ),
        measured_run(make_run(workdir / "reask-off", n), args, base_url, "structured off", structured="off"),
    ]
    old, old_url = start_server(args, "--structured-output", "reject")
    try:
        run = make_run(workdir / "reask-old", n)
        results.append(measured_run(run, args, old_url, "auto vs server without it", structured="auto"))
    finally:
        stop_server(old)
    return results


def stop_server(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def print_table(console: Any, title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(r[c]) for c in cols])
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=10_000)
    parser.add_argument("--server-concurrency", type=int, default=64, help="C: answers computed at once")
    parser.add_argument("--client-concurrency", type=int, default=None, help="default: C")
    parser.add_argument("--latency-min", type=float, default=0.5)
    parser.add_argument("--latency-max", type=float, default=2.0)
    parser.add_argument("--image-size", type=int, default=224, help="side of the JPEG sent per call")
    parser.add_argument(
        "--image-source",
        choices=["slide", "constant"],
        default="slide",
        help="slide: read + JPEG-encode every tile (real cost); constant: one pre-encoded image",
    )
    parser.add_argument(
        "--transports", default="native,aiohttp", help="comma-separated; the first is the peer of ratios"
    )
    parser.add_argument("--repeat", type=int, default=3, help="clean runs per transport, alternating")
    parser.add_argument(
        "--reask-patches", type=int, default=300, help="tiles per structured-output run; 0 skips them"
    )
    parser.add_argument(
        "--invalid-json-rate", type=float, default=0.2, help="prompt-only revise answers that are prose"
    )
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of calls journalled before kill -9")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "captioning.json")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.client_concurrency = args.client_concurrency or args.server_concurrency
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or args.repeat < 1:
        parser.error("need at least one transport and --repeat >= 1")
    import tempfile

    from rich.console import Console

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pathgen-bench-caption-"))
    server, base_url = start_server(args)
    results: list[dict[str, Any]] = []
    reasks: list[dict[str, Any]] = []
    killed: dict[str, Any] | None = None
    try:
        for rep in range(args.repeat):
            for t in transports:
                run = make_run(workdir / f"clean-{t}-{rep}", args.patches)
                results.append({**measured_run(run, args, base_url, f"clean #{rep}", t), "repetition": rep})
        if args.reask_patches:
            reasks = reask_runs(args, base_url, workdir)
        if not args.skip_kill:
            killed = kill_and_resume(args, base_url, workdir)
    finally:
        stop_server(server)
    console = Console(width=200)
    title = (
        f"captioning: {args.patches} patches x 3 agents, C={args.server_concurrency}, "
        f"latency U({args.latency_min}, {args.latency_max}) s, "
        f"image {args.image_size} px ({args.image_source})"
    )
    cols = [
        "run",
        "transport",
        "calls",
        "elapsed_s",
        "calls_per_s",
        "throughput_ratio",
        "client_cpu_ms_per_call",
        "user_ms_per_call",
        "sys_ms_per_call",
        "server_max_in_flight",
    ]
    print_table(console, title, results + ([killed] if killed else []), cols)
    summary = transport_summary(results, transports)
    print_table(
        console, f"client CPU per call by transport (C={args.server_concurrency})", summary, list(summary[0])
    )
    if reasks:
        reask_cols = [
            "run",
            "revise_rows",
            "revise_reask_rate",
            "revise_rejected",
            "structured_requests",
            "schema_rejected",
            "client_cpu_ms_per_call",
        ]
        print_table(
            console,
            f"revise re-asks with and without structured output ({args.reask_patches} tiles, "
            f"prompt-only prose rate {args.invalid_json_rate})",
            reasks,
            reask_cols,
        )
    if killed:
        k = killed
        console.print(
            f"kill -9 at {k['journalled_at_kill']} journalled calls: {k['repeated_journalled_calls']} "
            f"journalled calls repeated, {k['answered_but_lost_in_flight']} answered-but-in-flight calls "
            f"redone; journal "
            f"{k['journal_rows']} rows, {k['unique_tile_agent']} unique (tile, agent)"
        )
    meta = {
        "patches": args.patches,
        "server_concurrency": args.server_concurrency,
        "client_concurrency": args.client_concurrency,
        "latency": [args.latency_min, args.latency_max],
        "image_size": args.image_size,
        "image_source": args.image_source,
        "transports": transports,
        "repeat": args.repeat,
        "reask_patches": args.reask_patches,
        "invalid_json_rate": args.invalid_json_rate,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "goal_ratio": 0.95,
        "goal_cpu_ms": 1.0,
    }
    out = {"config": meta, "results": results, "transports": summary, "reasks": reasks, "killed": killed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
