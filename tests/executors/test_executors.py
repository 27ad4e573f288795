"""The executors: same results, failures as rows, crashed workers isolated or retried."""

from __future__ import annotations

from functools import partial

import pytest
from items import crash_on, die_once, native_threads, square

from pathgen.executors import ItemResult, make_executor
from pathgen.executors.base import Resources
from pathgen.executors.local import CRASHED, LocalExecutor


def _by_index(results: list[ItemResult]) -> dict[int, ItemResult]:
    out = {r.index: r for r in results}
    assert len(out) == len(results), "an item came back twice"
    return out


@pytest.mark.parametrize("workers,mode", [(1, "process"), (2, "thread"), (2, "process")])
def test_local_results_and_error_rows(workers: int, mode: str) -> None:
    items = list(range(6))
    got = _by_index(list(LocalExecutor().map(square, items, label="t", workers=workers,
                                              resources=Resources(mode=mode))))  # fmt: skip
    assert sorted(got) == items
    assert got[3].error == "ValueError: three is refused" and got[3].value is None
    assert {i: r.value for i, r in got.items() if r.ok} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}


def test_local_crashed_worker_blames_only_its_item() -> None:
    items = [(x, 2) for x in range(5)]
    got = _by_index(list(LocalExecutor().map(crash_on, items, label="t", workers=2)))
    assert got[2].error == CRASHED
    assert {i: r.value for i, r in got.items() if i != 2} == {0: 0, 1: 10, 3: 30, 4: 40}


def test_pool_workers_share_the_cores_for_native_threads(monkeypatch) -> None:
    """Two process workers: OpenCV in each uses its share of the cores, not every core."""
    import os

    import cv2

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = cv2.getNumThreads()
    results = list(LocalExecutor().map(native_threads, [0, 1], label="t", workers=2))
    share = max(1, (os.cpu_count() or 1) // 2)
    assert sorted(r.value for r in results) == [(share, str(share))] * 2
    inline = list(LocalExecutor().map(native_threads, [0], label="t", workers=1))
    assert inline[0].value == (before, None)  # inline: the main process is left as it was


def test_unknown_executor_lists_the_known_ones() -> None:
    from pathgen.config import ExecutorConfig, RunConfig

    with pytest.raises(ValueError, match="local"):
        ExecutorConfig.model_validate({"kind": "dask"})
    assert RunConfig.model_validate({"executor": "ray"}).executor.kind == "ray"


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pathgen-vl[ray]'")
    from pathgen.config import ExecutorConfig

    executor = make_executor(ExecutorConfig(kind="ray", ray_num_cpus=2, max_retries=2))
    yield executor
    executor.close()


def test_ray_gives_the_local_results(ray_executor) -> None:
    items = list(range(8))
    local = {r.index: (r.value, r.error) for r in LocalExecutor().map(square, items, label="t", workers=1)}
    ray = _by_index(list(ray_executor.map(square, items, label="t")))
    assert {i: (r.value, r.error) for i, r in ray.items()} == local


def test_ray_retries_a_task_whose_worker_died(ray_executor, tmp_path) -> None:
    items = [(x, str(tmp_path)) for x in range(6)]
    got = _by_index(list(ray_executor.map(die_once, items, label="t")))
    assert {i: r.value for i, r in got.items()} == {x: x + 100 for x in range(6)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.seen", "2.seen", "4.seen"]  # 3 workers killed


def test_ray_worker_that_always_dies_becomes_an_error_row(ray_executor) -> None:
    got = _by_index(list(ray_executor.map(partial(crash_on), [(x, 1) for x in range(3)], label="t")))
    assert got[1].error is not None and "lost on the cluster" in got[1].error
    assert got[0].value == 0 and got[2].value == 20


def test_ray_missing_is_a_clear_configuration_error(monkeypatch) -> None:
    import sys

    from pathgen.config import ExecutorConfig

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    with pytest.raises(ValueError, match=r"pip install 'pathgen-vl\[ray\]'"):
        make_executor(ExecutorConfig(kind="ray"))
