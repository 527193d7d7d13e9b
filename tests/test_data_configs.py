"""The dataset Hydra configs instantiate the data layer with valid arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ivos_rl.data import DavisDataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(name: str, **overrides: object) -> DictConfig:
    paths = OmegaConf.load(CONFIGS / "paths" / "default.yaml")
    cfg = OmegaConf.create({"paths": paths, "dataset": OmegaConf.load(CONFIGS / "dataset" / f"{name}.yaml")})
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"dataset.{key}", value)
    return cfg


@pytest.mark.parametrize(
    "name", ["synthetic", "davis2016_train", "davis2017_val", "youtube_vos", "davis_excerpt", "davis"]
)
def test_every_dataset_config_targets_the_data_layer(name: str) -> None:
    cfg = _cfg(name, **({"root": "/any/davis"} if name == "davis" else {}))
    assert cfg.dataset._target_ in {"ivos_rl.data.DavisDataset", "ivos_rl.data.synthetic.synthetic_dataset"}
    assert str(cfg.dataset.root)  # interpolations against paths/ resolve


def test_excerpt_config_instantiates(davis_excerpt_root: Path) -> None:
    ds = instantiate(_cfg("davis_excerpt", root=str(davis_excerpt_root), working_size=[60, 107]).dataset)
    assert isinstance(ds, DavisDataset) and ds.sequences == ["bear", "rollerblade"]
    assert ds.load_frames("bear", [0]).shape == (1, 60, 107, 3)


def test_synthetic_config_generates_then_reuses(tmp_path: Path) -> None:
    over = {
        "root": str(tmp_path / "syn"),
        "n_sequences": 1,
        "n_frames": 4,
        "size": [40, 48],
        "with_scribbles": False,
    }
    ds = instantiate(_cfg("synthetic", **over).dataset)
    assert isinstance(ds, DavisDataset) and ds.info("synthetic-000").n_frames == 4
    again = instantiate(_cfg("synthetic", **over).dataset)
    assert again.sequences == ds.sequences


def test_generic_davis_config_reads_any_davis_folder(davis_excerpt_root: Path, tmp_path: Path) -> None:
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue):
        instantiate(_cfg("davis").dataset)  # root is required: no silent default folder
    scribbles = tmp_path / "scr"
    (scribbles / "bear").mkdir(parents=True)
    cfg = _cfg("davis", root=str(davis_excerpt_root), resolution="240p", image_set="2016/train",
               scribbles_root=str(scribbles), working_size=[60, 107])
    ds = instantiate(cfg.dataset)
    assert isinstance(ds, DavisDataset) and ds.sequences == ["bear", "rollerblade"]
    assert ds.scribbles_root == scribbles and ds.samples() == []
    assert ds.load_masks("rollerblade", [0]).shape == (1, 60, 107)
    one = _cfg("davis", root=str(davis_excerpt_root), resolution="240p", sequences=["bear"])
    only = instantiate(one.dataset)
    assert only.sequences == ["bear"]
