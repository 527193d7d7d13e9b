"""The issue's calibration reference (benchmarks/_reference_backend.py) honours the backend contract.

The propagation backend's quality claims are measured against it, so it must be a working
backend, not a strawman: it passes ``check_backend`` and tracks a translated square.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from ivos_rl.backends import check_backend
from ivos_rl.metrics import batched_jaccard
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import moving_clip, on_frame, stroke


def test_reference_passes_the_backend_contract(benchmark_module: Callable[[str], ModuleType]) -> None:
    frames, gt = moving_clip(two_objects=True)
    backend = benchmark_module("_reference_backend.py").ReferenceBackend()
    outputs = check_backend(backend, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert 1 <= len(outputs) <= 3  # the robot stops early once the masks are perfect


def test_reference_tracks_a_translated_square(benchmark_module: Callable[[str], ModuleType]) -> None:
    frames, gt = moving_clip()
    t = len(frames)
    backend = benchmark_module("_reference_backend.py").ReferenceBackend()
    backend.reset(frames, 1, sequence="clip")
    strokes = [stroke(1, [(9, 15), (16, 15)]), stroke(0, [(2, 40), (60, 40)])]
    out = backend.interact(0, on_frame(t, 0, strokes))
    jac = batched_jaccard(gt, out.masks, nb_objects=1)
    # Same clip and strokes as the propagation backend's test; the reference is cruder, so only
    # require a mask that overlaps the square substantially (J 0.6 = a 14x14 square off by ~3 px).
    assert jac.mean() >= 0.6, jac
    xs = [np.nonzero(m)[1].mean() for m in out.masks]
    assert np.all(np.diff(xs) > 0), xs  # follows the motion to the right
