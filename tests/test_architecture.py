"""The layers of DESIGN.md, read from the code: every import in the package (lazy ones inside
functions too) is parsed with ``ast``, and drift from the layering fails here.

* no import cycle between subpackages (the root package counts as one node);
* ``config`` imports only ``_util``; ``_util`` imports no other subpackage;
* ``tracking`` imports nothing above ``data`` (in particular not ``train``);
* ``nn`` imports only ``kernels`` and ``_util`` (and ``kernels`` only ``_util``), and neither
  imports OmegaConf, Lightning, Ray or W&B;
* ``argparse`` and ``kanplatform.cli`` are imported only inside ``cli/`` (and by
  ``__main__.py``, the ``python -m kanplatform`` entry point).

And at run time: ``import kanplatform`` and the CLI's parser import none of the heavy parts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kanplatform"
HEAVY = ("omegaconf", "pytorch_lightning", "lightning", "ray", "wandb")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).is_dir() or (PACKAGE.parent / rel).with_suffix(".py").is_file()


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement of a file, anywhere in it."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from kanplatform import tracking` names a subpackage
                full = f"{base}.{alias.name}"
                found.append((full if _is_module(full) else base, node.lineno))
    return found


def _layer(module: str) -> str:
    """``kanplatform.train.fitting`` -> ``train``; the root package and ``__main__`` are
    themselves."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "kanplatform"


FILES = sorted(PACKAGE.rglob("*.py"))
IMPORTS = {path: _imports(path) for path in FILES}


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_the_package_is_read():
    layers = {_layer(_module_name(p)) for p in FILES}
    assert {"_util", "config", "kernels", "nn", "data", "train", "tracking", "search",
            "scaling", "interpret", "launch", "cli"} <= layers
    assert sum(len(v) for v in IMPORTS.values()) > 300


def test_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = defaultdict(set)
    for path, imports in IMPORTS.items():
        here = _layer(_module_name(path))
        for name, _ in imports:
            if name.startswith("kanplatform") and _layer(name) != here:
                graph[here].add(_layer(name))
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif len(trail) < len(graph) + 1:
                visit(nxt, trail + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, f"import cycles between subpackages: {sorted(set(cycles))}"


def _violations(layers: tuple[str, ...], allowed: tuple[str, ...],
                third_party: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path, imports in IMPORTS.items():
        here = _layer(_module_name(path))
        if here not in layers:
            continue
        for name, line in imports:
            if name.startswith("kanplatform") and _layer(name) not in (here, *allowed):
                bad.append(f"{_where(path, line)} imports {name}")
            if name.split(".")[0] in third_party:
                bad.append(f"{_where(path, line)} imports {name}")
    return bad


def test_config_is_the_bottom_layer():
    assert not _violations(("config",), ("_util",))
    assert not _violations(("_util",), ())


def test_tracking_sits_beside_train_not_above_it():
    # train starts the tracking; tracking reads configs and run directories, never train
    assert not _violations(("tracking",), ("_util", "config", "kernels", "nn", "data"))


def test_models_and_kernels_are_pure_torch():
    assert not _violations(("nn",), ("kernels", "_util"), HEAVY)
    assert not _violations(("kernels",), ("_util",), HEAVY)


@pytest.mark.parametrize("name", ["argparse", "kanplatform.cli"])
def test_only_the_cli_parses_arguments(name):
    bad = [_where(path, line) for path, imports in IMPORTS.items() for mod, line in imports
           if (mod == name or mod.startswith(f"{name}."))
           and _layer(_module_name(path)) != "cli" and path.name != "__main__.py"]
    assert not bad, f"{name} imported outside kanplatform/cli/: {bad}"


def test_importing_the_package_and_the_cli_parser_stays_light():
    code = ("import sys, kanplatform, kanplatform.nn; from kanplatform.cli import build_parser; "
            "build_parser(); print(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {HEAVY!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]", f"heavy modules imported: {out}"
