"""Stage fusion for Ray: consecutive CPU stages share one actor pool, GPU stages keep theirs."""

from __future__ import annotations

from pipeline.config.resources import StageResources
from pipeline.driver import ChainStage, fuse_cpu_stages


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
