"""Stage fusion for Ray: consecutive CPU stages share one actor pool, GPU stages and fan-outs
keep theirs; pools fit the machine; the Ray Data arguments reach Ray without a deprecation
warning."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

from pipeline.config.resources import StageResources
from pipeline.runners import (
    ChainStage,
    FanChainStage,
    LocalRunner,
    RayRunner,
    fuse_cpu_stages,
    map_with_retries,
    runs_as_task,
)


class Add:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, row: dict) -> dict:
        return {"x": row["x"] * 10 + self.n}


CPU, GPU = StageResources(num_cpus=1), StageResources(num_cpus=1, num_gpus=0.5)


def test_cpu_runs_fuse_and_gpu_stages_split_them():
    stages = [
        (Add, (1,), CPU),
        (Add, (2,), StageResources(num_cpus=2)),
        (Add, (3,), GPU),
        (Add, (4,), CPU),
    ]
    fused = fuse_cpu_stages(stages)
    assert [cls for cls, _, _ in fused] == [ChainStage, Add, Add]
    assert fused[0][2].num_cpus == 2 and fused[1][2].num_gpus == 0.5
    chain = ChainStage(*fused[0][1])
    assert chain({"x": 0}) == {"x": 12}  # applied in order


def test_a_single_stage_is_left_alone():
    assert fuse_cpu_stages([(Add, (1,), CPU)]) == [(Add, (1,), CPU)]


class Fan:
    """A 1:N stage: row x as rows x*10 + k for k < n."""

    fans_out = True

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, row: dict) -> list[dict]:
        return [{"x": row["x"] * 10 + k} for k in range(self.n)]


# 1 -> 11 -> 110, 111, 112 -> each *10+2, then *10+3; 2 likewise.
FANNED = [(110 + k) * 100 + 23 for k in range(3)] + [(210 + k) * 100 + 23 for k in range(3)]


def test_a_fan_out_ends_the_cpu_run_before_it_and_its_rows_go_on_through_the_rest():
    stages = [(Add, (1,), CPU), (Fan, (3,), CPU), (Add, (2,), CPU), (Add, (3,), CPU)]
    fused = fuse_cpu_stages(stages)
    assert [cls for cls, _, _ in fused] == [FanChainStage, ChainStage]
    assert [r["x"] for r in LocalRunner().stream([{"x": 1}, {"x": 2}], stages)] == FANNED
    assert [r["x"] for r in LocalRunner().stream([{"x": 1}, {"x": 2}], fused)] == FANNED


def test_a_fan_out_first_or_after_a_placed_stage_stays_alone():
    fan = (Fan, (3,), CPU)
    assert fuse_cpu_stages([fan, (Add, (1,), CPU)]) == [fan, (Add, (1,), CPU)]
    placed = (Add, (1,), GPU)
    assert fuse_cpu_stages([placed, fan]) == [placed, fan]
    assert runs_as_task(Fan) and not runs_as_task(FanChainStage)


@pytest.mark.slow
def test_a_fused_fan_out_gives_the_same_rows_on_ray(ray_local):
    stages = [(Add, (1,), CPU), (Fan, (3,), CPU), (Add, (2,), CPU), (Add, (3,), CPU)]
    rows = RayRunner(None, None).stream([{"x": 1}, {"x": 2}], stages)
    assert sorted(r["x"] for r in rows) == FANNED


def test_pools_are_scaled_so_each_ones_minimum_fits(ray_local):
    runner = RayRunner(None, None)  # the shared local Ray: 2 CPUs
    two = StageResources(num_cpus=1, concurrency=(2, 2))
    args = runner._actor_args([(Add, (1,), CPU), (Fan, (2,), CPU), (Add, (2,), two)])
    # need: 1 + 1 (the fan-out's task) + 2 x 1 (two's minimum) = 4 CPUs on 2.
    assert [a["num_cpus"] for a in args] == [0.5, 0.5, 0.5]
    assert "compute" not in args[1]  # the fan-out is a task, not a pool


def _same(row: dict) -> dict:
    return row


@pytest.mark.slow
def test_retries_reach_ray_and_only_their_deprecation_warning_is_silenced(ray_local):
    from ray.data import ActorPoolStrategy
    from ray.util.annotations import RayDeprecationWarning

    res = StageResources(num_cpus=0.5, concurrency=(1, 2), max_task_retries=3)
    ds = ray_local.data.range(1)  # lazy: nothing below runs, the plan is only built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        actors = map_with_retries(
            ds, Add, res.actor_retries(), fn_constructor_args=(1,), **res.actor_args(2)
        )
        tasks = map_with_retries(ds, _same, res.task_retries(), **res.ray_args())
    assert [str(w.message) for w in caught] == []
    pool = actors._logical_plan.dag
    assert pool.compute == ActorPoolStrategy(
        min_size=1, max_size=2, max_tasks_in_flight_per_actor=1
    )
    assert pool.ray_remote_args == {"num_cpus": 0.5, "max_restarts": -1, "max_task_retries": 3}
    assert tasks._logical_plan.dag.ray_remote_args == {"num_cpus": 0.5, "max_retries": 3}
    # Ray does warn about the retry options; any other deprecation still reaches the caller.
    with pytest.warns(RayDeprecationWarning, match="`ray_remote_args` is deprecated"):
        ds.map(_same, max_retries=3)
    with pytest.warns(RayDeprecationWarning, match="`ray_remote_args_fn` is deprecated"):
        map_with_retries(ds, _same, {}, ray_remote_args_fn=dict)


class Meet:
    """Writes its process id into `folder`, then waits (at most `wait_s`) until `n` rows
    have: two rows meet only if two actors hold them at the same time."""

    def __init__(self, folder: str, n: int, wait_s: float) -> None:
        self.folder, self.n, self.wait_s = Path(folder), n, wait_s

    def __call__(self, row: dict) -> dict:
        pid = os.getpid()
        (self.folder / f"{row['x']}-{pid}").touch()
        deadline = time.monotonic() + self.wait_s
        while len(list(self.folder.iterdir())) < self.n and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"x": row["x"], "pid": pid, "met": len(list(self.folder.iterdir())) >= self.n}


@pytest.mark.slow
def test_a_pool_grows_to_take_a_waiting_row_instead_of_queueing_it_on_a_busy_actor(
    ray_local, tmp_path
):
    # A pool of default bounds (one actor, growing to two on 2 CPUs) and two rows: each a
    # video's encode unit, say. Ray Data's defaults queued the second on the first actor,
    # behind the first row; it must go to a second actor while the first row runs.
    meet = (Meet, (str(tmp_path), 2, 20.0), StageResources(num_cpus=1))
    rows = list(RayRunner(None, None).stream([{"x": 1}, {"x": 2}], [meet]))
    assert [r["met"] for r in rows] == [True, True]
    assert len({r["pid"] for r in rows}) == 2


def test_closing_leaves_a_ray_it_joined_running(ray_local):
    runner = RayRunner(None, None)  # the shared local Ray, started by the fixture
    runner.close()
    assert ray_local.is_initialized()
