"""Bridge to the reference implementation (davisinteractive 1.0.4) for parity checks and benchmarks.

davisinteractive no longer installs into the project environment (it needs ``np.int``,
``networkx.from_scipy_sparse_matrix``, scikit-learn...), so it lives in a separate virtualenv and
is driven through a subprocess that exchanges ``.npz`` files. Set it up once with::

    python3 -m venv /tmp/davref
    /tmp/davref/bin/pip install numpy scipy scikit-image networkx pandas opencv-python-headless \
        scikit-learn absl-py six requests cython wheel setuptools
    /tmp/davref/bin/pip install --no-deps --no-build-isolation davisinteractive==1.0.4
    export DAVISINTERACTIVE_PYTHON=/tmp/davref/bin/python

This file has two halves:

* run as a script by the reference interpreter (``python _davisinteractive.py TASK IN OUT``) it
  applies the compatibility aliases, runs TASK on the arrays of IN and writes OUT; it never imports
  ivos_rl;
* imported from the project environment it offers :func:`reference_python` and
  :func:`call_reference`.

The reference robot's medial axis breaks ties with an unseeded generator in recent
scikit-image; the bridge pins it to ``rng=MEDIAL_AXIS_SEED`` (what ivos-rl's robot uses by
default) so that both sides can be compared.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "DAVISINTERACTIVE_PYTHON"
MEDIAL_AXIS_SEED = 0


def reference_python() -> str | None:
    """Interpreter that can import davisinteractive: $DAVISINTERACTIVE_PYTHON, else this one, else None."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit if Path(explicit).exists() else None
    if importlib.util.find_spec("davisinteractive") is not None:
        return sys.executable
    return None


def call_reference(
    task: str, inputs: dict[str, Any], python: str | None = None, timeout: float = 600.0
) -> dict[str, np.ndarray]:
    """Run ``task`` in the reference interpreter and return its output arrays."""
    python = python or reference_python()
    if python is None:
        raise RuntimeError(f"davisinteractive is not importable; set {ENV_VAR} (see this module's docstring)")
    with tempfile.TemporaryDirectory(prefix="davref_") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **{k: np.asarray(v) for k, v in inputs.items()})
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.run(
            [python, str(Path(__file__).resolve()), task, str(src), str(dst)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"reference task {task!r} failed:\n{proc.stderr[-4000:]}")
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}


# --------------------------------------------------------------------------- reference side


def _patch_reference() -> Any:
    """Make davisinteractive 1.0.4 importable on numpy 2 / networkx 3 and return the module."""
    if not hasattr(np, "int"):
        np.int = int  # type: ignore[attr-defined]  # noqa: NPY001
    if not hasattr(np, "float"):
        np.float = float  # type: ignore[attr-defined]  # noqa: NPY001
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # type: ignore[attr-defined]  # noqa: NPY201
    import networkx

    if not hasattr(networkx, "from_scipy_sparse_matrix"):
        networkx.from_scipy_sparse_matrix = networkx.from_scipy_sparse_array
    import davisinteractive.robot.interactive_robot as robot_module
    from skimage.morphology import medial_axis

    robot_module.medial_axis = functools.partial(medial_axis, rng=MEDIAL_AXIS_SEED)
    import davisinteractive

    return davisinteractive


def _best_time(fn: Any, repeats: int) -> tuple[Any, float, float]:
    """Result, best process CPU time (robust to other users' load) and best wall time of ``repeats`` runs."""
    best, best_wall, result = float("inf"), float("inf"), None
    for _ in range(max(repeats, 1)):
        start, start_wall = time.process_time(), time.perf_counter()
        result = fn()
        best = min(best, time.process_time() - start)
        best_wall = min(best_wall, time.perf_counter() - start_wall)
    return result, best, best_wall


def _task_metrics(data: dict[str, np.ndarray]) -> dict[str, Any]:
    from davisinteractive.metrics import batched_f_measure, batched_jaccard

    nb = int(data["nb_objects"])
    nb_objects = None if nb < 0 else nb
    bound_th = float(data["bound_th"])
    repeats = int(data.get("repeats", 1))
    gt, pred = data["y_true"], data["y_pred"]
    jac, t_j, w_j = _best_time(
        lambda: batched_jaccard(gt, pred, average_over_objects=False, nb_objects=nb_objects), repeats
    )
    fme, t_f, w_f = _best_time(
        lambda: batched_f_measure(
            gt, pred, average_over_objects=False, nb_objects=nb_objects, bound_th=bound_th
        ),
        repeats,
    )
    return {
        "jaccard": jac,
        "f_measure": fme,
        "time_jaccard": t_j,
        "time_f_measure": t_f,
        "wall_jaccard": w_j,
        "wall_f_measure": w_f,
    }


def _robot(data: dict[str, np.ndarray]) -> Any:
    from davisinteractive.robot import InteractiveScribblesRobot

    return InteractiveScribblesRobot(
        kernel_size=float(data["kernel_size"]),
        max_kernel_radius=float(data["max_kernel_radius"]),
        min_nb_nodes=int(data["min_nb_nodes"]),
        nb_points=int(data["nb_points"]),
    )


def _task_robot(data: dict[str, np.ndarray]) -> dict[str, Any]:
    robot = _robot(data)
    nb = int(data["nb_objects"])
    frame = int(data["frame"])
    repeats = int(data.get("repeats", 1))
    scribbles, elapsed, _ = _best_time(
        lambda: robot.interact(
            "seq",
            data["pred"],
            data["gt"],
            nb_objects=None if nb < 0 else nb,
            frame=None if frame < 0 else frame,
        ),
        repeats,
    )
    return {"scribbles_json": np.asarray(json.dumps(scribbles)), "time": elapsed}


def _task_skeleton(data: dict[str, np.ndarray]) -> dict[str, Any]:
    robot = _robot(data)
    masks = data["masks"]
    return {"skeletons": np.stack([robot._generate_scribble_mask(m) for m in masks])}


def _task_operations(data: dict[str, np.ndarray]) -> dict[str, Any]:
    from davisinteractive.utils.operations import bezier_curve, bresenham

    points = data["points"]
    return {
        "bezier": bezier_curve(points.astype(float), int(data["nb_points"])),
        "bresenham": bresenham(points.astype(int)),
    }


def _task_scribbles2mask(data: dict[str, np.ndarray]) -> dict[str, Any]:
    from davisinteractive.utils.scribbles import scribbles2mask

    scribbles = json.loads(str(data["scribbles_json"]))
    shape = tuple(int(v) for v in data["shape"])
    return {
        "mask": scribbles2mask(scribbles, shape, bresenham=True),
        "mask_nobres": scribbles2mask(scribbles, shape, bresenham=False),
    }


def _task_session_max_time(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """What the reference keeps of a client's ``max_time``: locally capped, remotely discarded."""
    import inspect
    import tempfile

    from davisinteractive.connector.remote import RemoteConnector
    from davisinteractive.session import DavisInteractiveSession

    with tempfile.TemporaryDirectory() as tmp:
        local = DavisInteractiveSession(max_time=float(data["max_time"]), report_save_dir=tmp)
    remote_src = inspect.getsource(RemoteConnector.get_samples)
    return {"local_max_time": float(local.max_time), "remote_discards": "del max_t" in remote_src}


def _task_graph_paths(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """The reference's graph step on a skeleton: path node coordinates, and networkx facts."""
    import networkx

    robot = _robot(data)
    graph, points = robot._mask2graph(data["skeleton"])
    paths = [points[robot._longest_path_in_tree(g)] for g in robot._acyclics_subgraphs(graph)]
    return {
        "paths_json": np.asarray(json.dumps([p.tolist() for p in paths])),
        "networkx_version": np.asarray(networkx.__version__),
        "has_from_scipy_sparse_matrix": hasattr(networkx, "from_scipy_sparse_matrix")
        and networkx.from_scipy_sparse_matrix is not networkx.from_scipy_sparse_array,
    }


_TASKS = {
    "metrics": _task_metrics,
    "robot": _task_robot,
    "skeleton": _task_skeleton,
    "operations": _task_operations,
    "scribbles2mask": _task_scribbles2mask,
    "session_max_time": _task_session_max_time,
    "graph_paths": _task_graph_paths,
}


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in _TASKS:
        print(f"usage: _davisinteractive.py {{{','.join(_TASKS)}}} IN.npz OUT.npz", file=sys.stderr)
        return 2
    task, src, dst = argv
    _patch_reference()
    import cv2

    cv2.setNumThreads(1)  # one thread like the ivos-rl side of the benchmarks
    with np.load(src) as f:
        data = {k: f[k] for k in f.files}
    out = _TASKS[task](data)
    np.savez(dst, **{k: np.asarray(v) for k, v in out.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
