"""Backend registry and the Hydra configs of configs/backend/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ivos_rl.backends import (
    BackendOutput,
    CachedBackend,
    SimulatedBackend,
    VOSBackend,
    available_backends,
    build_backend,
    get_backend_class,
    register_backend,
)
from ivos_rl.backends import registry as registry_module
from ivos_rl.errors import CheckpointError, ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "backend"


class Dummy(VOSBackend):
    def reset(self, frames: np.ndarray, n_objects: int, **kw: object) -> None:
        self.k = n_objects

    def interact(self, frame_idx: int, interaction: dict) -> BackendOutput:
        raise NotImplementedError


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear afterwards."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def test_builtin_backends_are_registered() -> None:
    names = available_backends()
    assert {"simulated", "cached", "sam2"} <= set(names)
    assert names == sorted(names)
    assert get_backend_class("simulated") is SimulatedBackend
    assert SimulatedBackend.name == "simulated" and CachedBackend.name == "cached"


def test_build_backend_passes_arguments() -> None:
    sim = build_backend("simulated", seed=11, drift=0.0)
    assert isinstance(sim, SimulatedBackend) and sim.seed == 11 and sim.drift == 0.0


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'simulatd'.*cached.*simulated"):
        build_backend("simulatd")


def test_unknown_argument_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'simulated'.*\['sede'\]"):
        build_backend("simulated", sede=1)


def test_register_and_conflicts(clean_registry: None) -> None:
    register_backend("dummy")(Dummy)
    assert "dummy" in available_backends() and Dummy.name == "dummy"
    assert isinstance(build_backend("dummy"), Dummy)
    register_backend("dummy")(Dummy)  # same class again (module reload): fine

    class Other(Dummy):
        pass

    with pytest.raises(ConfigError, match="already registered"):
        register_backend("dummy")(Other)
    with pytest.raises(ConfigError, match="VOSBackend subclass"):
        register_backend("notabackend")(int)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="identifier"):
        register_backend("bad name!")


def test_hydra_config_builds_the_simulator() -> None:
    cfg = OmegaConf.load(CONFIGS / "simulated.yaml")
    sim = instantiate(cfg)
    assert isinstance(sim, SimulatedBackend)
    defaults = SimulatedBackend()
    assert {k: getattr(sim, k) for k in cfg if k != "_target_"} == {
        k: getattr(defaults, k) for k in cfg if k != "_target_"
    }


def test_hydra_config_builds_the_cache_around_another_backend(tmp_path: Path) -> None:
    # cached.yaml composes the default backend (propagation_accurate.yaml) as the wrapped one; the
    # documented override replaces that node with another backend
    from hydra import compose, initialize_config_dir

    replace = "+backend.backend={_target_: ivos_rl.backends.simulated.SimulatedBackend, seed: 2}"
    with initialize_config_dir(config_dir=str(CONFIGS.parent), version_base="1.3"):
        base = ["backend=cached", f"paths.cache_dir={tmp_path}"]
        default = compose("evaluate", base)
        cfg = compose("evaluate", [*base, "~backend.backend", replace])
        accurate = compose("evaluate", ["backend=propagation_accurate"])
    assert default.backend.backend == accurate.backend  # one definition of the default backend
    cached = instantiate(cfg.backend)
    assert isinstance(cached, CachedBackend) and isinstance(cached.backend, SimulatedBackend)
    assert cached.cache_dir == tmp_path / "backend" and cached.max_bytes == 2 * 1024**3
    assert cached.backend.seed == 2


def test_hydra_config_for_sam2_requires_an_existing_checkpoint(tmp_path: Path) -> None:
    cfg = OmegaConf.load(CONFIGS / "sam2.yaml")
    assert OmegaConf.is_missing(cfg, "ckpt_path")
    cfg.ckpt_path = str(tmp_path / "missing.pt")
    with pytest.raises(InstantiationException) as info:  # Hydra wraps the typed error
        instantiate(cfg)
    assert isinstance(info.value.__cause__, CheckpointError)
    assert "missing.pt" in str(info.value.__cause__)
