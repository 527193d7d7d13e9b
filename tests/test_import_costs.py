"""Layering: light modules import no heavy stack, names stay reachable, packages form no cycle.

Import costs are checked in a fresh interpreter (``sys.modules`` of this test process already
holds everything). Before this was enforced, ``import ivos_rl.strategies.worst`` loaded torch,
Gymnasium, OpenCV and 43 ivos_rl modules through package ``__init__`` files.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HEAVY = ("torch", "torchvision", "gymnasium", "cv2", "scipy", "pandas", "matplotlib", "skimage", "hydra")
# The environment package may register itself with Gymnasium, nothing more.
ENV_HEAVY = tuple(h for h in HEAVY if h != "gymnasium")
ENV_INTERNALS = ("ivos_rl.backends", "ivos_rl.quality", "ivos_rl.agents", "ivos_rl.envs.frame_recommendation")

LIGHT = {
    "ivos_rl.strategies.worst": HEAVY,
    "ivos_rl.strategies": HEAVY,
    "ivos_rl.metrics": HEAVY,
    "ivos_rl.state": HEAVY,
    "ivos_rl.data.splits": HEAVY,
    "ivos_rl.utils": HEAVY,
    "ivos_rl.data": HEAVY,
    "ivos_rl.backends": HEAVY,
    "ivos_rl.quality": HEAVY,
    "ivos_rl.agents": HEAVY,
    "ivos_rl.envs.rewards": ENV_HEAVY + ENV_INTERNALS,
}
LAZY_PACKAGES = [
    "ivos_rl.utils",
    "ivos_rl.data",
    "ivos_rl.backends",
    "ivos_rl.quality",
    "ivos_rl.strategies",
    "ivos_rl.agents",
    "ivos_rl.envs",
]


def _fresh(code: str) -> object:
    """Run ``code`` in a new interpreter; it prints one JSON value, which is returned."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_light_modules_import_no_heavy_stack() -> None:
    loaded = {}
    for module, forbidden in LIGHT.items():
        loaded[module] = _fresh(
            f"import json, sys\nimport {module}\n"
            f"print(json.dumps([b for b in {list(forbidden)!r} "
            f"if any(m == b or m.startswith(b + '.') for m in sys.modules)]))"
        )
    assert loaded == {module: [] for module in LIGHT}


def test_registries_find_builtins_without_eager_imports() -> None:
    found = _fresh(
        "import json\n"
        "from ivos_rl.strategies import build_strategy, available_strategies\n"
        "from ivos_rl.backends import available_backends\n"
        "s = build_strategy('worst')\n"
        "print(json.dumps([type(s).__name__, available_strategies(), available_backends()]))"
    )
    assert found == [
        "WorstStrategy",
        [
            "farthest", "farthest_wild", "linspace", "oracle_lookahead", "random", "span_error",
            "uncertainty", "worst",
        ],
        ["cached", "propagation", "sam2", "simulated"],
    ]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None and name in dir(module)
        assert getattr(module, name) is value  # cached after the first access
    with pytest.raises(AttributeError, match=rf"{package}.*no_such_name"):
        module.no_such_name  # noqa: B018


def _package_dirs() -> dict[str, Path]:
    dirs = {}
    for pkg in ("ivos_rl", "ivos_rl.agents", "ivos_rl.envs"):
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations
        dirs[pkg] = Path(next(iter(spec.submodule_search_locations)))
    return dirs


def _modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, file) of every module of the installed package."""
    dirs = _package_dirs()
    for pkg, root in dirs.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "sample_data" in parts or (pkg == "ivos_rl" and parts[0] in ("agents", "envs")):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([pkg, *parts]), path


def _group(module: str) -> str:
    """``ivos_rl.<top-level module or subpackage>``: the unit of the layering."""
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    """Edges between ivos_rl's top-level modules/subpackages from every import statement
    (module level or inside functions: a deferred import is still a dependency)."""
    edges: dict[str, set[str]] = {}
    for module, path in _modules():
        src = _group(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("ivos_rl.") and _group(target) != src:
                    edges.setdefault(src, set()).add(_group(target))
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_by_hand() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_packages_form_no_import_cycle() -> None:
    edges = package_graph()
    assert "ivos_rl.strategies" in edges and "ivos_rl.agents" in edges  # the walk saw the code
    assert _cycle(edges) is None
    # strategies sit below the agent, the environment and the models: they import none of them
    assert not edges["ivos_rl.strategies"] & {
        "ivos_rl.agents",
        "ivos_rl.envs",
        "ivos_rl.quality",
        "ivos_rl.backends",
        "ivos_rl.evaluation",
    }
    assert edges.get("ivos_rl.state", set()) <= {"ivos_rl.errors"}


def _import_package(root: Path, monkeypatch: pytest.MonkeyPatch, imports: str, names: list[str]) -> object:
    """Import a throw-away package ``lazypkg`` whose ``__init__`` has ``imports`` under
    TYPE_CHECKING and ``__all__ = names``; its submodule ``sub`` defines VALUE = 7 and twice(x)."""
    (root / "lazypkg").mkdir()
    (root / "lazypkg" / "sub.py").write_text("VALUE = 7\n\ndef twice(x):\n    return 2 * x\n")
    (root / "lazypkg" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ivos_rl.utils.lazy import lazy_exports\n"
        f"if TYPE_CHECKING:\n    {imports}\n"
        "OWN = 1\n"
        f"__all__ = {names!r}\n"
        "__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)\n"
    )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "lazypkg", raising=False)
    monkeypatch.delitem(sys.modules, "lazypkg.sub", raising=False)
    return importlib.import_module("lazypkg")


def test_lazy_exports_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imports = "from lazypkg.sub import VALUE, twice as double"
    pkg: Any = _import_package(tmp_path, monkeypatch, imports, ["OWN", "VALUE", "double"])
    assert "lazypkg.sub" not in sys.modules  # nothing imported until a name is used
    assert {"OWN", "VALUE", "double"} <= set(dir(pkg))
    assert pkg.double(3) == 6 and pkg.VALUE == 7  # an alias resolves to the original name
    assert "lazypkg.sub" in sys.modules and vars(pkg)["VALUE"] == 7  # cached in the namespace
    with pytest.raises(AttributeError, match="'lazypkg' has no attribute 'twice'"):
        pkg.twice  # noqa: B018


def test_lazy_exports_refuse_names_without_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImportError, match=r"without a TYPE_CHECKING import \['typo'\].*__all__ \['twice'\]"):
        _import_package(tmp_path, monkeypatch, "from lazypkg.sub import VALUE, twice", ["VALUE", "typo"])
