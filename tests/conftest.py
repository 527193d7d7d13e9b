"""Shared pytest fixtures: small datasets every test module may reuse."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ivos_rl.data.synthetic import generate_dataset

FIXTURES = Path(__file__).parent / "fixtures"
DAVIS_EXCERPT = FIXTURES / "davis_excerpt"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# Parameters of the session-wide synthetic dataset (3 sequences x 12 frames x 64x96, <= 2 objects,
# 3 robot scribbles per sequence, resolution folder "480p"); tests may rely on these numbers.
SYNTHETIC_PARAMS = {
    "n_sequences": 3,
    "n_frames": 12,
    "size": (64, 96),
    "max_objects": 2,
    "seed": 0,
    "with_scribbles": True,
}


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated DAVIS-layout dataset (see SYNTHETIC_PARAMS); read it, never modify it."""
    root = tmp_path_factory.mktemp("synthetic") / "dataset"
    return generate_dataset(root, **SYNTHETIC_PARAMS)


@pytest.fixture(scope="session")
def davis_excerpt_root() -> Path:
    """2 real DAVIS-2016 train sequences x 10 frames at 240p (committed under tests/fixtures)."""
    return DAVIS_EXCERPT


def write_tiny_davis(root: Path) -> Path:
    """Hand-made DAVIS folder whose every pixel is known (used by data tests that corrupt it).

    Sequence ``a``: 3 frames of 8x10; frame t is the flat colour (40 * t, 100, 200). Object 1
    covers columns 0..4 of frame 0 and columns 0..2 of frames 1-2; object 2 covers rows 6..7,
    columns 6..9 of frames 0-1 and is absent from frame 2. Sequence ``b``: 2 frames, object 1 is
    the single pixel (0, 0). ``ImageSets/2017/train.txt`` lists ``b`` only.
    """
    import numpy as np

    from ivos_rl.data.imageio import write_jpeg, write_mask

    a = np.zeros((3, 8, 10), np.uint8)
    a[0, :, 0:5] = 1
    a[1:, :, 0:3] = 1
    a[0:2, 6:8, 6:10] = 2
    b = np.zeros((2, 8, 10), np.uint8)
    b[:, 0, 0] = 1
    for name, masks in (("a", a), ("b", b)):
        for t, mask in enumerate(masks):
            frame = np.empty((8, 10, 3), np.uint8)
            frame[:] = (40 * t, 100, 200)
            write_jpeg(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", frame)
            write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", mask)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("b\n")
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A fresh copy of the hand-made dataset of :func:`write_tiny_davis` (tests may modify it)."""
    return write_tiny_davis(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _detach_cli_log_handlers() -> Iterator[None]:
    """CLI ``main`` functions install a stream handler on the captured stderr of the test that ran
    them; drop it afterwards so later tests do not log into a closed stream."""
    yield
    logger = logging.getLogger("ivos_rl")
    for handler in list(logger.handlers):
        if getattr(handler, "_ivos_rl", False):
            logger.removeHandler(handler)


@pytest.fixture(scope="session")
def benchmark_module() -> Callable[[str], ModuleType]:
    """Loader of a self-contained helper module of benchmarks/ by file name (benchmarks/ is no package)."""

    def load(filename: str) -> ModuleType:
        path = BENCHMARKS / filename
        spec = importlib.util.spec_from_file_location(f"ivos_rl_benchmarks_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load
