"""``caption.engine: ray-vllm``: the VLM runs inside the Ray cluster (Ray Data LLM's vLLM processor).

For a cluster with GPUs and no model servers. The agents, their checks and re-asks, the chain and
the journal are the ones of the server engine; only the generator differs: :class:`BatchGenerator`
collects every call the chain makes, and when every unfinished tile of a round is waiting for an
answer the driver sends them all through one Ray Data pass
(``ray.data.llm.build_processor(vLLMEngineProcessorConfig(...))``), answers the calls, and the chain
moves on. So describe runs as one pass over a round of tiles, then revise, then summarize (re-asks
and retries are further, smaller passes). Rows carry OpenAI-style chat messages; an image part
carries only a reference to the tile, read and JPEG-encoded by Ray Data's preprocess step on the
cluster, not on the driver. The driver alone writes the journal (one writer: no shards needed).
Rounds of ``ray_vllm.chunk_tiles`` tiles bound the driver's memory; a round's rows are committed
as its passes finish, so Ctrl-C (which aborts the pass in progress) loses at most that pass.

Untested without a GPU: the tests here check the processor config, the rows and their messages,
the pass loop with a pure-Python pass in place of vLLM, and the error when vLLM is missing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from pathgen.agents.base import Agent
from pathgen.agents.chain import AgentSlot, CaptionChain, TileTask
from pathgen.config import CaptionConfig
from pathgen.engine.caller import Caller, Stats
from pathgen.engine.journal import Journal
from pathgen.engine.retry import RetryPolicy
from pathgen.executors import Executor
from pathgen.models.generators import (
    GenerationParams,
    GenerationResult,
    ImagePart,
    TransientError,
    replace_images,
)
from pathgen.rundir import RunDir

INSTALL_HINT = (
    "caption.engine 'ray-vllm' runs the VLM with vLLM inside Ray Data, and vLLM is not installed: "
    "pip install vllm  (on the GPU nodes, with pip install 'ray[data,llm]>=2.49'); or use "
    "caption.engine 'server' with an OpenAI-compatible server"
)
TILE_SCHEME = "pathgen-tile:"
JPEG_QUALITY = 90

PassFn = Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]


def require_vllm() -> None:
    """Fail at once, with the pip command, when vLLM cannot be imported."""
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise ValueError(INSTALL_HINT) from exc


class TileImage(ImagePart):
    """A tile the model will see, by reference only: its pixels are read on the cluster."""

    __slots__ = ("task",)

    def __init__(self, task: TileTask) -> None:
        super().__init__(None)
        self.task = task

    def ref(self) -> str:
        t = self.task
        fields = ("tile_id", "slide_id", "x", "y", "size", "slide_path", "reader")  # a TileRecord's
        return TILE_SCHEME + json.dumps({k: getattr(t, k) for k in fields})


class BatchGenerator:
    """A generator whose calls wait in :attr:`queue` until the driver answers them with a pass."""

    offline_demo = False
    enforces_timeout = True  # a pass over thousands of tiles takes longer than one call's timeout

    def __init__(self, name: str, image_size: int) -> None:
        self.name = name
        self.image_size = None  # the chain pre-encodes nothing: images travel as references
        self._size = image_size
        self.queue: list[tuple[dict[str, Any], asyncio.Future[GenerationResult]]] = []

    async def generate(
        self, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> GenerationResult:
        future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        self.queue.append((request_row(messages, params, request_id, self._size), future))
        return await future

    async def aclose(self) -> None:
        return None


def generator_factory(cfg: CaptionConfig) -> Callable[[str, list[str]], BatchGenerator]:
    """For :func:`pathgen.agents.stage.build_agents`: one batched generator per model."""
    return lambda model, urls: BatchGenerator(model, cfg.image_size)


def request_row(
    messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None, image_size: int
) -> dict[str, Any]:
    """One call as a Ray Data row: OpenAI-style messages (JSON: Arrow needs one type per column)."""

    def part(image: Any) -> dict[str, Any]:
        if isinstance(image, TileImage):
            url = image.ref()
        else:
            img = image if isinstance(image, ImagePart) else ImagePart(image)
            url = img.data_url(image_size, JPEG_QUALITY)
        return {"type": "image_url", "image_url": {"url": url}}

    sampling: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
    }
    if params.seed is not None:
        sampling["seed"] = params.seed
    sampling.update(params.extra_body)  # vLLM sampling parameters, as a server's extra_body
    return {
        "request_id": request_id or "",
        "messages_json": json.dumps(replace_images(messages, part), ensure_ascii=False),
        "sampling_json": json.dumps(sampling),
        "image_size": image_size,
    }


def preprocess(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data preprocess (on the cluster): tile references become JPEG data URLs."""
    messages = json.loads(row["messages_json"])
    for msg in messages:
        if isinstance(msg["content"], list):
            for part in msg["content"]:
                url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else ""
                if url.startswith(TILE_SCHEME):
                    part["image_url"]["url"] = _tile_data_url(json.loads(url[len(TILE_SCHEME) :]), row)
    return {**row, "messages": messages, "sampling_params": json.loads(row["sampling_json"])}


def _tile_data_url(ref: dict[str, Any], row: dict[str, Any]) -> str:
    """The tile read on the cluster with its slide's recorded reader, encoded as the HTTP client does."""
    from pathgen.records import TileRecord

    size = int(row["image_size"])
    return ImagePart(TileRecord.from_rows(ref).read(size)).data_url(size, JPEG_QUALITY)


def postprocess(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data postprocess: what the driver needs to answer the call (vLLM gives no finish reason:
    an answer that used every allowed token is taken as cut off, ``length``)."""
    max_tokens = json.loads(row["sampling_json"]).get("max_tokens")
    n_out = int(row.get("num_generated_tokens") or 0)
    return {
        "idx": row["idx"],
        "text": row.get("generated_text") or "",
        "tokens_in": int(row.get("num_input_tokens") or 0),
        "tokens_out": n_out,
        "finish_reason": "length" if max_tokens and n_out >= max_tokens else "stop",
        "error": str(row.get("__inference_error__") or ""),
    }


def processor_config(cfg: CaptionConfig, model: str, uses_image: bool = True) -> Any:
    """The ``vLLMEngineProcessorConfig`` for one model (``hf:`` prefix dropped: vLLM takes the id)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    rv = cfg.ray_vllm
    kwargs: dict[str, Any] = {
        "model_source": model.removeprefix("hf:"),
        "engine_kwargs": dict(rv.engine_kwargs),
        "batch_size": rv.batch_size,
        "concurrency": rv.replicas,
        "should_continue_on_error": True,  # a failed row is an error row (retried), not a failed run
        "chat_template_stage": True,
        "tokenize_stage": True,
        "detokenize_stage": True,
        "prepare_multimodal_stage": {"enabled": uses_image},
    }
    if rv.accelerator_type:
        kwargs["accelerator_type"] = rv.accelerator_type
    return vLLMEngineProcessorConfig(**kwargs)


def caption_with_vllm(
    run: RunDir,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    agents: list[Agent],
    slots: list[AgentSlot],
    executor: Executor | None,
    image_loader: Callable[[TileTask], Any] | None,
    progress: bool,
    limit: int | None,
    fp: str,
) -> dict[str, Any]:
    """Build one processor per model and drive the chain through Ray Data passes."""
    if executor is None or executor.name != "ray":
        raise ValueError(
            "caption.engine 'ray-vllm' runs on Ray: add --executor ray (--ray-address for a cluster)"
        )
    require_vllm()
    from ray.data.llm import build_processor

    ray = executor.ensure()  # type: ignore[attr-defined]
    processors = {}
    for agent in agents:
        name = agent.generator.name
        uses_image = any(a.uses_image for a in agents if a.generator.name == name)
        if name not in processors:
            config = processor_config(cfg, name, uses_image)
            processors[name] = build_processor(config, preprocess=preprocess, postprocess=postprocess)

    def run_pass(model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return processors[model](ray.data.from_items(rows)).take_all()

    return drive_passes(run, cfg, tasks, slots, image_loader, run_pass, limit, fp)


def drive_passes(
    run: RunDir,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    image_loader: Callable[[TileTask], Any] | None,
    run_pass: PassFn,
    limit: int | None,
    fp: str,
) -> dict[str, Any]:
    """The chain over rounds of tiles, every model call answered by ``run_pass(model, rows)``."""
    from pathgen.agents.stage import finish, warm_up

    warm_up(slots)
    loader = image_loader or TileImage
    stats = Stats(total=len(tasks))
    with Journal(run.journal) as journal:
        journal.set_meta("chain", [s.describe() for s in slots])
        size = cfg.ray_vllm.chunk_tiles
        for start in range(0, len(tasks), size):
            asyncio.run(_round(journal, cfg, tasks[start : start + size], slots, loader, stats, run_pass))
    return finish(run, stats.summary(), len(tasks), slots, False, limit, fp)


async def _round(
    journal: Journal,
    cfg: CaptionConfig,
    tasks: list[TileTask],
    slots: list[AgentSlot],
    loader: Callable[[TileTask], Any],
    stats: Stats,
    run_pass: PassFn,
) -> None:
    policy = RetryPolicy.of(cfg)
    caller = Caller(max(1, len(tasks)), policy, stats)
    chain = CaptionChain(slots, journal, caller, stats, loader, cfg.image_size)
    chain.preload(tasks)
    generators = list({id(s.agent.generator): s.agent.generator for s in slots}.values())
    tiles = [asyncio.ensure_future(chain.run_tile(t)) for t in tasks]
    loop = asyncio.get_running_loop()
    while True:
        live = sum(not t.done() for t in tiles)
        waiting = sum(len(g.queue) for g in generators)
        if live == 0:
            break
        if waiting < live:  # some tile is still between calls (image, backoff, its journal row)
            await asyncio.sleep(0.005)
            continue
        for gen in generators:
            if gen.queue:
                batch, gen.queue = gen.queue, []
                rows = [{**row, "idx": i} for i, (row, _) in enumerate(batch)]
                began = time.perf_counter()
                answers = await loop.run_in_executor(None, run_pass, gen.name, rows)
                _answer(gen.name, batch, answers, (time.perf_counter() - began) / max(1, len(batch)))
    await asyncio.gather(*tiles)


def _answer(
    model: str,
    batch: list[tuple[dict[str, Any], asyncio.Future[GenerationResult]]],
    answers: list[dict[str, Any]],
    latency: float,
) -> None:
    by_idx = {int(a["idx"]): a for a in answers}
    for i, (_, future) in enumerate(batch):
        answer = by_idx.get(i)
        if answer is None or answer.get("error"):
            why = answer["error"] if answer else "no answer came back from the pass"
            future.set_exception(TransientError(f"vLLM: {why}"[:1000]))
        else:
            future.set_result(
                GenerationResult(answer["text"], answer["tokens_in"], answer["tokens_out"], latency, model,
                                 answer["finish_reason"])
            )  # fmt: skip
