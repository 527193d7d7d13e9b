"""Gradient-boosted trees on the appearance-free signals: a second kind of feature quality model.

Training uses scikit-learn's ``HistGradientBoostingRegressor`` (imported only inside
:func:`fit_gbt`); the fitted trees are exported to plain arrays (:class:`Forest`), so a checkpoint
stays ``weights_only`` loadable and prediction is NumPy: loading and using a tree checkpoint needs
no scikit-learn. The estimate is the trees' J&F (squared or absolute error, clipped to [0, 1]);
the uncertainty comes from two quantile heads (q10, q90): ``sd = (q90 - q10) / 2.563`` (the width
of a Gaussian's central 80%), times ``sd_scale`` set from out-of-sample residuals as for the MLP.
With ``mlp`` set the model also fits the MLP ensemble of :mod:`ivos_rl.quality.feature_model` and
returns the mean of the two estimates (variance: mean of the two variances + their spread).

This module also dispatches between the kinds (``kind`` of a recipe dict and of a model state;
absent means the MLP ensemble, so earlier checkpoints and configs keep working).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import torch

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.context import select_columns
from ivos_rl.quality.feature_model import (
    FeatureModelConfig,
    FeatureQualityModel,
    fit_feature_model,
    model_from_state,
    model_state,
    recipe_groups,
    signal_columns,
)
from ivos_rl.utils.seed import name_seed

KIND = "gbt"
LOSSES = ("squared_error", "absolute_error")
_Z80 = NormalDist().inv_cdf(0.9)  # q90 - q10 = 2 x 1.2816 sd for a Gaussian
_MIN_SD = 1e-3
_CHUNK = 4096  # rows per vectorised tree walk (bounds the (rows, trees) index arrays)
_FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left", "roots")


@dataclass(frozen=True)
class GBTConfig:
    """Recipe of the tree model (``HistGradientBoostingRegressor`` arguments plus the extras)."""

    kind: str = KIND
    loss: str = "squared_error"
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 200
    l2_regularization: float = 0.0
    quantile_iter: int = 100  # boosting iterations of each quantile head (uncertainty only)
    monotone: Mapping[str, int] = field(default_factory=dict)  # signal -> +1 / -1 (rising / falling J&F)
    mlp: Mapping[str, Any] | None = None  # FeatureModelConfig fields: average with that MLP ensemble
    signal_groups: tuple[str, ...] = ()  # optional signal groups it also uses (features.OPTIONAL_GROUPS)

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise ConfigError(f"GBTConfig kind must be {KIND!r}, got {self.kind!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"gbt loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf", "quantile_iter"):
            value, low = getattr(self, name), 2 if name == "max_leaf_nodes" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"gbt {name} must be an int >= {low}, got {value!r}")
        if not self.learning_rate > 0 or self.l2_regularization < 0:
            raise ConfigError(f"gbt learning_rate must be > 0 and l2_regularization >= 0: {self}")
        object.__setattr__(self, "signal_groups", recipe_groups(self.signal_groups))
        signs = {str(k): v for k, v in dict(self.monotone).items()}
        if any(v not in (-1, 1) or isinstance(v, bool) for v in signs.values()):
            raise ConfigError(f"gbt monotone signs must be +1 or -1, got {signs}")
        object.__setattr__(self, "monotone", dict(sorted(signs.items())))
        if self.mlp is not None:
            mlp = self.mlp_config()
            if mlp.context or mlp.signal_groups != recipe_groups(self.signal_groups):
                raise ConfigError(
                    "a gbt + mlp blend uses the trees' signals (mlp.context must be false, mlp.signal_groups "
                    "the trees' signal_groups)"
                )
            object.__setattr__(self, "mlp", dict(self.mlp))

    def mlp_config(self) -> FeatureModelConfig:
        """The blended MLP's recipe (ConfigError for an unknown field)."""
        try:
            return FeatureModelConfig(**dict(self.mlp or {}))
        except TypeError as exc:
            raise ConfigError(f"gbt mlp recipe {self.mlp!r} is not valid: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["monotone"] = dict(self.monotone)
        out["mlp"] = None if self.mlp is None else dict(self.mlp)
        if not self.signal_groups:  # files without optional signal groups stay loadable by older code
            del out["signal_groups"]
        else:
            out["signal_groups"] = list(self.signal_groups)
        return out


Recipe = FeatureModelConfig | GBTConfig


@dataclass(frozen=True)
class Forest:
    """Fitted regression trees as flat arrays; ``predict`` = baseline + sum of the reached leaves.

    A row goes left at a split when its value is <= ``threshold`` (NaN: ``missing_left``), which is
    the rule of scikit-learn's histogram trees on raw (float64) values."""

    feature: np.ndarray  # (nodes,) int64 split column
    threshold: np.ndarray  # (nodes,) float64
    left: np.ndarray  # (nodes,) int64, global node index
    right: np.ndarray
    leaf: np.ndarray  # (nodes,) bool
    value: np.ndarray  # (nodes,) float64 leaf values (0 elsewhere)
    missing_left: np.ndarray  # (nodes,) bool
    roots: np.ndarray  # (trees,) int64
    baseline: float
    depth: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N,) float64 predictions for rows ``x`` (N, F) in the training column order."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(len(x), np.float64)
        for start in range(0, len(x), _CHUNK):
            rows = x[start : start + _CHUNK]
            node = np.broadcast_to(self.roots, (len(rows), len(self.roots))).copy()
            at = np.arange(len(rows))[:, None]
            for _ in range(self.depth):
                inner = ~self.leaf[node]
                if not inner.any():
                    break
                v = rows[at, self.feature[node]]
                go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
                node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
            out[start : start + len(rows)] = self.baseline + self.value[node].sum(axis=1)
        return out

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f: torch.from_numpy(np.ascontiguousarray(getattr(self, f))) for f in _FIELDS}
        return {**state, "baseline": float(self.baseline), "depth": int(self.depth)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Forest:
        arrays = {
            f: state[f].numpy() if isinstance(state[f], torch.Tensor) else np.asarray(state[f])
            for f in _FIELDS
        }
        return cls(**arrays, baseline=float(state["baseline"]), depth=int(state["depth"]))


def forest_from_sklearn(model: Any) -> Forest:
    """Export a fitted single-output ``HistGradientBoostingRegressor`` (identity link) to a :class:`Forest`.

    Reads the estimator's tree nodes (``_predictors``, ``_baseline_prediction``): scikit-learn has no
    public accessor for them; ``tests/test_quality_gbt.py`` checks the export against its ``predict``."""
    feats, thr, left, right, leaf, value, miss, roots = ([] for _ in range(8))
    offset, depth = 0, 0
    for per_iteration in model._predictors:
        if len(per_iteration) != 1:
            raise ConfigError("only single-output tree models can be exported")
        nodes = per_iteration[0].nodes
        if nodes["is_categorical"].any():
            raise ConfigError("categorical splits are not supported by the exported trees")
        roots.append(offset)
        feats.append(nodes["feature_idx"].astype(np.int64))
        thr.append(nodes["num_threshold"].astype(np.float64))
        left.append(nodes["left"].astype(np.int64) + offset)
        right.append(nodes["right"].astype(np.int64) + offset)
        is_leaf = nodes["is_leaf"].astype(bool)
        leaf.append(is_leaf)
        value.append(np.where(is_leaf, nodes["value"], 0.0).astype(np.float64))
        miss.append(nodes["missing_go_to_left"].astype(bool))
        depth = max(depth, int(nodes["depth"].max()))
        offset += len(nodes)
    return Forest(
        feature=np.concatenate(feats),
        threshold=np.concatenate(thr),
        left=np.concatenate(left),
        right=np.concatenate(right),
        leaf=np.concatenate(leaf),
        value=np.concatenate(value),
        missing_left=np.concatenate(miss),
        roots=np.asarray(roots, np.int64),
        baseline=float(np.asarray(model._baseline_prediction).reshape(-1)[0]),
        depth=depth,
    )


class GBTQualityModel:
    """Tree model (+ optional MLP blend) with the feature model's interface (``predict``,
    ``predict_rows``, ``names``, ``config``, ``sd_scale``, ``eval``)."""

    def __init__(
        self,
        names: tuple[str, ...],
        cfg: GBTConfig,
        forests: Mapping[str, Forest],
        mlp: FeatureQualityModel | None = None,
    ) -> None:
        if set(forests) != {"mean", "q10", "q90"}:
            raise ConfigError(f"a gbt model needs the forests mean, q10, q90, got {sorted(forests)}")
        if (cfg.mlp is None) != (mlp is None):
            raise ConfigError("a gbt model has an MLP part exactly when its recipe names one")
        self.names = tuple(names)
        self.config = cfg
        self.forests = dict(forests)
        self.mlp = mlp
        self.sd_scale = torch.ones((), dtype=torch.float32)

    def eval(self) -> GBTQualityModel:
        """No training mode to leave (interface parity with the MLP ensemble)."""
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(estimate in [0, 1], uncertainty sd), float32 (N,), for rows ``x`` (N, len(names))."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise InputValidationError(f"feature rows must be (N, {len(self.names)}), got {x.shape}")
        mu = np.clip(self.forests["mean"].predict(x), 0.0, 1.0)
        width = self.forests["q90"].predict(x) - self.forests["q10"].predict(x)
        var = np.maximum(width / (2 * _Z80), _MIN_SD) ** 2
        if self.mlp is not None:
            mu_m, sd_m = (a.astype(np.float64) for a in self.mlp.predict(x))
            var = 0.5 * (var + sd_m**2) + 0.25 * (mu - mu_m) ** 2
            mu = 0.5 * (mu + mu_m)
        sd = np.sqrt(var) * float(self.sd_scale)
        return mu.astype(np.float32), sd.astype(np.float32)

    def predict_rows(self, x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` on the model's own columns of rows ``x`` whose columns are ``names``."""
        return self.predict(select_columns(x, names, self.names))


def fit_gbt(
    x: np.ndarray, y: np.ndarray, names: tuple[str, ...], cfg: GBTConfig, seed: int = 0
) -> GBTQualityModel:
    """Fit the trees (and quantile heads, and the blended MLP) on rows ``x`` (N, F) with J&F ``y``;
    uses the per-frame signals of ``names`` (:func:`signal_columns`: context columns are ignored,
    optional groups' columns used when ``cfg.signal_groups`` names them). Deterministic per seed."""
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor  # training-only (optional extra)
    except ImportError as exc:
        raise ConfigError(
            "training a kind: gbt recipe needs scikit-learn: pip install 'ivos-rl[trees]'"
        ) from exc

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != (len(y), len(names)) or len(y) < 2:
        raise InputValidationError(
            f"need >= 2 rows of {len(names)} features and targets, got {x.shape}, {y.shape}"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputValidationError("feature rows or targets hold NaN/inf")
    used = signal_columns(names, cfg.signal_groups)
    unknown = sorted(set(cfg.monotone) - set(used))
    if unknown:
        raise ConfigError(f"gbt monotone names signals the rows lack: {unknown}")
    x_used = np.ascontiguousarray(select_columns(x, names, used), dtype=np.float64)
    common = {
        "learning_rate": cfg.learning_rate,
        "max_leaf_nodes": cfg.max_leaf_nodes,
        "min_samples_leaf": cfg.min_samples_leaf,
        "l2_regularization": cfg.l2_regularization,
        "monotonic_cst": [int(cfg.monotone.get(n, 0)) for n in used],
        "early_stopping": False,
        "random_state": name_seed(seed, "feature-gbt") % 2**31,
    }
    heads = {"mean": {"loss": cfg.loss, "max_iter": cfg.max_iter}}
    heads |= {
        f"q{q}": {"loss": "quantile", "quantile": q / 100, "max_iter": cfg.quantile_iter} for q in (10, 90)
    }
    forests = {
        name: forest_from_sklearn(HistGradientBoostingRegressor(**common, **kw).fit(x_used, y))
        for name, kw in heads.items()
    }
    mlp = None
    if cfg.mlp is not None:
        mlp = fit_feature_model(
            x_used.astype(np.float32), y.astype(np.float32), used, cfg.mlp_config(), seed=seed
        )
    return GBTQualityModel(used, cfg, forests, mlp)


# ---- dispatch between the kinds of feature model -------------------------------------------------


def recipe_from_dict(raw: Mapping[str, Any]) -> Recipe:
    """A recipe from config fields: ``kind: gbt`` -> :class:`GBTConfig`, otherwise (no kind, or
    ``mlp``) the MLP ensemble's :class:`FeatureModelConfig`."""
    fields = dict(raw)
    kind = fields.pop("kind", "mlp")
    try:
        if kind == KIND:
            return GBTConfig(**fields)
        if kind == "mlp":
            return FeatureModelConfig(**fields)
    except TypeError as exc:
        raise ConfigError(f"feature recipe {dict(raw)!r} has an unknown field: {exc}") from exc
    raise ConfigError(f"unknown feature model kind {kind!r} (mlp or {KIND})")


def fit_model(
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    cfg: Recipe,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> FeatureQualityModel | GBTQualityModel:
    """Fit the model kind of recipe ``cfg`` (``groups``: the rows' round groups, used by the MLP's
    ranking term only)."""
    if isinstance(cfg, GBTConfig):
        return fit_gbt(x, y, names, cfg, seed=seed)
    return fit_feature_model(x, y, names, cfg, seed=seed, groups=groups)


def state_of(model: FeatureQualityModel | GBTQualityModel) -> dict[str, Any]:
    """Plain, ``weights_only``-loadable state of either kind (MLP states carry no ``kind``: older
    code keeps loading them)."""
    if not isinstance(model, GBTQualityModel):
        return model_state(model)
    return {
        "kind": KIND,
        "names": list(model.names),
        "config": model.config.to_dict(),
        "forests": {k: f.to_state() for k, f in model.forests.items()},
        "sd_scale": float(model.sd_scale),
        "mlp": None if model.mlp is None else model_state(model.mlp),
    }


def model_from_any_state(state: Mapping[str, Any]) -> FeatureQualityModel | GBTQualityModel:
    """Inverse of :func:`state_of` (``ConfigError`` for an unknown kind or recipe field)."""
    kind = state.get("kind", "mlp")
    if kind == "mlp":
        return model_from_state(dict(state))
    if kind != KIND:
        raise ConfigError(f"unknown feature model kind {kind!r} in a checkpoint (mlp or {KIND})")
    cfg = recipe_from_dict(state["config"])
    forests = {k: Forest.from_state(v) for k, v in state["forests"].items()}
    mlp = None if state.get("mlp") is None else model_from_state(state["mlp"])
    model = GBTQualityModel(tuple(state["names"]), cfg, forests, mlp)  # type: ignore[arg-type]
    model.sd_scale.fill_(float(state["sd_scale"]))
    return model
