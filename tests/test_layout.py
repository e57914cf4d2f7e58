"""The layout's rules, read off the source: the two halves meet only in `schemas/`,
train's layers import downwards only, no import cycle, no oversized module.

Every import counts, also one inside a function (a lazy import is still a dependency):
the AST of every module is walked, so the rules hold without importing torch or Ray.
`pipeline/cli.py` reaches training by name (`_lazy("train.cli", ...)`), on purpose: the
`clipmill` command dispatches to both halves and curation never pays for torch.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "pipeline", "train")
MAX_LINES = 420  # "about 400": a module past this holds more than one job

# train's layers, lowest first: a module may import its own layer or a lower one.
# The DataModule sits above the cache because it dispatches to the latent reader;
# fine-tuning (train.finetune) sits beside the DiT's module, over the data and the cache;
# `clipmill cache` (train.cache.cli) is a command, so it may build a family's cache.
TRAIN_LAYERS: tuple[tuple[str, ...], ...] = (
    ("schemas",),
    (
        "train.schedule",
        "train.optim",
        "train.flow",
        "train.filmstrip",
        "train.data",
        "train.models",
        "train.autoencoder",
    ),
    ("train.cache",),
    ("train.module", "train.data.module", "train.vae_module", "train.finetune"),
    ("train.cli", "train.cache.cli"),
)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    return {_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(target: str) -> str | None:
    """The longest prefix of `target` that is one of our modules (None: not ours)."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in modules():
            return name
    return None


def imports_of(name: str, tree: ast.Module | None = None) -> set[str]:
    """Our modules that `name` imports, anywhere in its body."""
    path = modules()[name]
    tree = tree or ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # `from pkg import mod` imports the module pkg.mod when there is one.
            found.update(_resolve(f"{base}.{a.name}") or _resolve(base) for a in node.names)
    return {m for m in found if m and m != name}


@cache
def graph() -> dict[str, set[str]]:
    return {name: imports_of(name) for name in modules()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def boundary_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that cross the halves: train -> pipeline, pipeline (not demo) -> train,
    schemas -> either."""
    bad = []
    for mod, targets in graph.items():
        for t in targets:
            if _under(mod, "train") and _under(t, "pipeline"):
                bad.append(f"{mod} imports {t}")
            if _under(mod, "pipeline") and not _under(mod, "pipeline.demo") and _under(t, "train"):
                bad.append(f"{mod} imports {t}")
            if _under(mod, "schemas") and not _under(t, "schemas"):
                bad.append(f"{mod} imports {t}")
    return bad


def layer_of(name: str) -> int | None:
    """The index in TRAIN_LAYERS of the most specific prefix of `name`."""
    best, where = -1, None
    for i, layer in enumerate(TRAIN_LAYERS):
        for prefix in layer:
            if _under(name, prefix) and len(prefix) > best:
                best, where = len(prefix), i
    return where


def review_violations(graph: dict[str, set[str]]) -> list[str]:
    """The review layer sits on top of curation: stages get a person's cut edits as row
    data and never import `pipeline.review`; the server is reached only by the command."""
    bad = []
    for mod, targets in graph.items():
        for t in targets:
            if _under(mod, "pipeline.stages") and _under(t, "pipeline.review"):
                bad.append(f"{mod} imports {t}")
            if _under(t, "pipeline.review.server") and mod != "pipeline.cli":
                bad.append(f"{mod} imports {t}")
    return bad


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in graph.items():
        if not _under(mod, "train"):
            continue
        for t in targets:
            low, high = layer_of(t), layer_of(mod)
            if low is None or high is None or low > high:
                bad.append(f"{mod} (layer {high}) imports {t} (layer {low})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_two_halves_meet_only_in_schemas():
    assert boundary_violations(graph()) == []


def test_train_imports_only_downwards():
    assert layer_violations(graph()) == []


def test_review_sits_on_top_of_curation():
    assert review_violations(graph()) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_module_is_oversized():
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_every_package_has_a_map():
    """Each package's __init__ says what its subpackages are for, before any file is opened."""
    for name, path in modules().items():
        if path.name == "__init__.py" and name in ("pipeline", "train"):
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            subpackages = [p.name for p in path.parent.iterdir() if (p / "__init__.py").is_file()]
            assert all(f"{s}/" in doc for s in subpackages), (name, subpackages)


# The checks themselves must catch what they are for (a rule that cannot fail is no rule).
@pytest.mark.parametrize(
    ("module", "line", "check"),
    [
        ("train.data.augment", "import pipeline.driver", boundary_violations),
        ("train.models.dit", "from pipeline.config.base import check", boundary_violations),
        ("pipeline.stages.split", "from train.cli import train_main", boundary_violations),
        ("schemas.records", "import train.flow", boundary_violations),
        ("train.models.dit", "from train.cache.format import key_seed", layer_violations),
        ("train.cache.builder", "from train.cli import train_main", layer_violations),
        ("pipeline.stages.split", "from pipeline.review.overrides import FILE", review_violations),
        ("pipeline.pack.pack", "from pipeline.review.server import serve", review_violations),
        ("schemas.vocab", "from schemas.records import Field", cycles),
        ("pipeline.config.base", "from pipeline.config.curate import CurateConfig", cycles),
    ],
)
def test_the_checks_catch_a_planted_import(module, line, check):
    assert check(graph()) == []
    path = modules()[module]
    planted = ast.parse(path.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n")
    changed = {**graph(), module: imports_of(module, planted)}
    assert check(changed), f"{check.__name__} missed {line!r} in {module}"
