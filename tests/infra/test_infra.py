"""infra/ files parse and carry what their engines require (no cluster needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"


def _pin(name: str) -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{name}==([^"]+)"', text).group(1)


def _check_pod(template: dict, where: str) -> None:
    containers = template["spec"]["containers"]
    assert containers and all(c.get("image") for c in containers), where
    for c in containers:
        res = c.get("resources", {})
        assert res.get("limits") and res.get("requests"), f"{where}: set requests and limits"


def _check_cluster_spec(spec: dict, where: str) -> None:
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    _check_pod(head["template"], f"{where} head")
    groups = spec["workerGroupSpecs"]
    names = [g["groupName"] for g in groups]
    assert len(set(names)) == len(names) and {"cpu", "gpu"} <= set(names)
    for g in groups:
        assert isinstance(g["rayStartParams"], dict)
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]
        _check_pod(g["template"], f"{where} {g['groupName']}")
    gpu = next(g for g in groups if g["groupName"] == "gpu")
    pod = gpu["template"]["spec"]
    assert pod["tolerations"] and pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]


def test_kuberay_raycluster_has_the_fields_kuberay_requires():
    doc = yaml.safe_load((INFRA / "kuberay" / "raycluster.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    _check_cluster_spec(doc["spec"], "RayCluster")


def test_kuberay_rayjob_runs_clipmill_curate_on_the_cluster():
    doc = yaml.safe_load((INFRA / "kuberay" / "rayjob-curate.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    entry = doc["spec"]["entrypoint"]
    assert entry.startswith("clipmill curate") and "--ray.address auto" in entry
    _check_cluster_spec(doc["spec"]["rayClusterSpec"], "RayJob")


def test_rayjob_entrypoint_parses_with_the_real_cli():
    from pipeline.cli import curate_parser

    doc = yaml.safe_load((INFRA / "kuberay" / "rayjob-curate.yaml").read_text())
    argv = doc["spec"]["entrypoint"].split()[2:]
    ns = curate_parser().parse_args(argv)
    assert ns.ray.address == "auto"


def test_ray_cluster_launcher_config():
    doc = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "head_start_ray_commands", "worker_start_ray_commands"):
        assert doc[key], key
    assert any("torch==" + _pin("torch") in c for c in doc["setup_commands"])


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfiles_pin_like_pyproject_run_as_non_root_and_have_a_healthcheck(name):
    text = (INFRA / "docker" / name).read_text()
    assert f"torch=={_pin('torch')}" in text and f"torchvision=={_pin('torchvision')}" in text
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^ENTRYPOINT \[\"clipmill\"\]", text, re.M)


@pytest.mark.parametrize("name", ["train.sbatch", "ray_curate.sbatch"])
def test_slurm_scripts_are_valid_bash_with_sbatch_headers(name):
    path = INFRA / "slurm" / name
    subprocess.run([shutil.which("bash") or "/bin/bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert "#SBATCH --nodes=" in text and "set -euo pipefail" in text
    want = "srun clipmill train fit" if name == "train.sbatch" else "clipmill curate"
    assert want in text


def _wanted_custom(node: object) -> set[str]:
    """Custom Ray resources a curate config's `resources.custom` fields ask for."""
    if not isinstance(node, dict):
        return set()
    found = set((node.get("custom") or {}).keys())
    for value in node.values():
        found |= _wanted_custom(value)
    return found


def test_custom_resources_of_the_cluster_config_are_offered_by_the_clusters():
    """A stage asking for a resource no node offers would wait for ever: keep them in step."""
    from pipeline.config.curate import build_config

    cfg = yaml.safe_load((ROOT / "configs" / "curate" / "cluster.yaml").read_text())
    build_config(cfg)
    wanted = _wanted_custom(cfg)
    assert wanted  # the example shows custom placement
    kuberay = yaml.safe_load((INFRA / "kuberay" / "raycluster.yaml").read_text())["spec"]
    job = yaml.safe_load((INFRA / "kuberay" / "rayjob-curate.yaml").read_text())
    for spec in (kuberay, job["spec"]["rayClusterSpec"]):
        cpu = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "cpu")
        # KubeRay's format: a JSON object inside a JSON string.
        offered = json.loads(json.loads(cpu["rayStartParams"]["resources"]))
        assert wanted <= set(offered)
    launcher = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    flags = re.findall(r"--resources='([^']+)'", " ".join(launcher["worker_start_ray_commands"]))
    assert flags and wanted <= set(json.loads(flags[0]))
