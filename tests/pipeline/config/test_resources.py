"""Per-stage placement: config -> Ray Data arguments, validation naming the flag, streaming."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.cli import curate_parser
from pipeline.config.curate import SECTIONS, ConfigError, CurateConfig, build_config
from pipeline.config.resources import StageResources
from pipeline.driver import mp4_scorers
from pipeline.runners import ChainStage, RayRunner, fuse_cpu_stages


def test_gpu_fraction_custom_resource_and_bounds_reach_the_actor_pool():
    from ray.data import ActorPoolStrategy

    res = StageResources(
        num_cpus=2, num_gpus=0.25, concurrency=(2, 6), custom={"node2": 1}, memory=1 << 30
    )
    # Named parameters only: `concurrency=` and extra kwargs are deprecated in Ray 2.60.
    assert res.actor_args(cluster_cpus=8) == {
        "num_cpus": 2,
        "num_gpus": 0.25,
        "resources": {"node2": 1},
        "memory": 1 << 30,
        "compute": ActorPoolStrategy(min_size=2, max_size=6, max_tasks_in_flight_per_actor=1),
    }
    assert res.actor_retries() == {"max_restarts": -1, "max_task_retries": 3}


def test_pool_size_defaults_grow_from_one_actor():
    assert StageResources(num_cpus=2).pool_size(cluster_cpus=8) == (1, 4)
    assert StageResources(concurrency=3).pool_size(cluster_cpus=8) == (1, 3)
    # A small cluster scales the CPU request, not the pool bound.
    args = StageResources(num_cpus=1).actor_args(cluster_cpus=2, cpu_scale=0.25)
    assert args["num_cpus"] == 0.25
    assert (args["compute"].min_size, args["compute"].max_size) == (1, 2)
    assert "num_gpus" not in args and "resources" not in args


def test_plain_function_stages_are_tasks_retried_on_worker_death():
    res = StageResources(num_cpus=0.5, max_task_retries=5, custom={"io": 0.5})
    assert res.ray_args() == {"num_cpus": 0.5, "resources": {"io": 0.5}}
    assert res.task_retries() == {"max_retries": 5}


def test_placed_stages_keep_their_own_pool():
    plain, node2 = StageResources(num_cpus=1), StageResources(custom={"node2": 1})
    bounded = StageResources(concurrency=(1, 2))
    stages = [(dict, (), plain), (dict, (), node2), (dict, (), plain), (dict, (), plain)]
    stages += [(dict, (), bounded)]
    fused = fuse_cpu_stages(stages)
    assert [s[0] for s in fused] == [dict, dict, ChainStage, dict]
    assert fused[1][2] is node2 and fused[3][2] is bounded


def test_model_stages_keep_their_own_pool_so_concurrency_bounds_the_model_copies():
    vlm = {"sources": ["sidecar_timed", "vlm"], "vlm": {"model": "some/vlm"}}
    cfg = build_config({"clip": {"enabled": True}, "caption": vlm})
    stages = [(dict, (), StageResources(num_cpus=0.5)), *mp4_scorers(cfg)]
    fused = fuse_cpu_stages(stages)
    kinds = [s[0].__name__ for s in fused]
    # text filter + the stage before it fuse; CLIP and the VLM stand alone, each one actor.
    assert kinds == ["ChainStage", "ClipStage", "VlmStage", "CaptionStage"]
    assert all(s[2].concurrency == 1 for s in fused[1:3])
    assert not StageResources(num_cpus=1, concurrency=1).placed  # a light stage still fuses


def test_a_fused_pool_asks_for_the_most_any_member_needs():
    small = StageResources(num_cpus=0.5, memory=1 << 28, max_task_retries=1)
    big = StageResources(num_cpus=2, memory=1 << 30, max_task_retries=5)
    (fused,) = fuse_cpu_stages([(dict, (), small), (dict, (), big)])
    assert fused[0] is ChainStage
    assert (fused[2].num_cpus, fused[2].memory, fused[2].max_task_retries) == (2, 1 << 30, 5)


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"clip": {"resources": {"num_gpus": 1.5}}}, "--clip.resources.num_gpus"),
        ({"split": {"resources": {"num_cpus": 0}}}, "--split.resources.num_cpus"),
        (
            {"transcode": {"resources": {"concurrency": [3, 1]}}},
            "--transcode.resources.concurrency",
        ),
        (
            {"transcode": {"resources": {"concurrency": [1, 2, 3]}}},
            "--transcode.resources.concurrency",
        ),
        ({"split": {"resources": {"concurrency": 0}}}, "--split.resources.concurrency"),
        ({"split": {"resources": {"custom": {"CPU": 1}}}}, "--split.resources.custom"),
        ({"split": {"resources": {"custom": {"node2": 1.5}}}}, "--split.resources.custom"),
        ({"split": {"resources": {"custom": {"node2": 0}}}}, "--split.resources.custom"),
        ({"caption": {"vlm": {"resources": {"memory": -1}}}}, "--caption.vlm.resources.memory"),
        ({"probe": {"resources": {"max_task_retries": -2}}}, "--probe.resources.max_task_retries"),
        ({"ray": {"address": "ray://head:10001"}}, "--ray.address"),  # Ray Client: use a job
    ],
)
def test_bad_placement_fails_at_start_naming_the_flag(values, flag):
    with pytest.raises(ConfigError, match=f"^{flag} "):
        build_config(values)


def test_command_line_and_yaml_lists_fill_the_same_fields():
    argv = ["in", "--output", "o", "--transcode.resources.custom", '{"node2": 1}']
    argv += ["--clip.resources.concurrency", "[1, 4]", "--clip.resources.num_gpus", "0.5"]
    parser = curate_parser()
    built = parser.instantiate(parser.parse_args(argv))
    cfg = CurateConfig(**{k: built[k] for k in SECTIONS})
    assert cfg.transcode.resources.custom == {"node2": 1}
    assert cfg.clip.resources.concurrency == (1, 4) and cfg.clip.resources.num_gpus == 0.5
    from_yaml = build_config({"clip": {"resources": {"concurrency": [1, 4], "num_gpus": 0.5}}})
    assert from_yaml.clip.resources == cfg.clip.resources
    partial = build_config({"clip": {"resources": {"num_gpus": 0.5}}}).clip.resources
    assert (partial.num_gpus, partial.concurrency, partial.own_pool) == (0.5, 1, True)


class Gate:
    """Passes rows 0 and 1 at once; holds every later row until the consumer has a row.

    Two, not one: Ray Data's iterator looks one block ahead before it yields."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def __call__(self, row: dict) -> dict:
        (self.folder / f"started_{row['i']}").touch()
        deadline = time.monotonic() + 60
        while row["i"] >= 2 and not (self.folder / "go").exists():
            if time.monotonic() > deadline:  # only a pipeline that materialised gets here
                raise TimeoutError("no row reached the consumer")
            time.sleep(0.05)
        return row


@pytest.mark.slow
def test_stream_yields_before_the_input_list_is_processed(ray_local, tmp_path):
    """Rows stream out as they finish: nothing waits for the whole input list."""
    n = 40
    runner = RayRunner(None, None)
    stages = [(Gate, (str(tmp_path),), StageResources(num_cpus=0.5, concurrency=1))]
    rows = iter(runner.stream([{"i": i} for i in range(n)], stages))
    first = next(rows)
    started = len(list(tmp_path.glob("started_*")))
    (tmp_path / "go").touch()
    rest = [r["i"] for r in rows]
    assert first["i"] in (0, 1) and started < n
    assert sorted([0, *rest]) == list(range(n))
