"""Quality estimates from appearance-free features, with uncertainty and the stop signal.

:class:`FeatureQualityEstimator` has the estimators' call shape ``predict(frames, probs) -> (q, q_k)``
plus the keyword ``history`` (the annotated frames so far), which its features need: call sites must
pass it (a missing history is an error, never guessed). After each call ``last_uncertainty`` (T,)
and ``last_uncertainty_k`` (T, K) hold the per-frame standard deviations. Per-object estimates
combine into the frame score as their mean (IVOS-W Eq. 7); the frame's uncertainty is the mean of
the objects' (exact when their errors are fully correlated, an upper bound otherwise).

The model is either kind of :mod:`ivos_rl.quality.feature_gbt` (MLP ensemble or gradient-boosted
trees; the kind is recorded in the checkpoint's model state), optionally followed by a monotone
level map (:mod:`ivos_rl.quality.level_calibration`, stored as ``level_calibration`` in the
checkpoint; files without one load as the identity). Checkpoints (``*.features.pt``)
record the backend fingerprints the model was trained on and the sequence split;
:meth:`FeatureQualityEstimator.check_backend` warns once per (checkpoint, backend) when the backend
in use is not one of them, naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.backends.base import VOSBackend
from ivos_rl.data.splits import read_split_record
from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError
from ivos_rl.quality.checkpoint import warn_other_backend
from ivos_rl.quality.context import add_context, is_context
from ivos_rl.quality.feature_gbt import GBTQualityModel, model_from_any_state, state_of
from ivos_rl.quality.feature_model import FeatureQualityModel
from ivos_rl.quality.features import feature_names, groups_of, quality_features
from ivos_rl.quality.level_calibration import LevelCalibration
from ivos_rl.quality.motion import MotionCache
from ivos_rl.quality.stop import StopRule
from ivos_rl.utils.io import atomic_path
from ivos_rl.utils.torch_io import safe_torch_load

FORMAT = "ivos_rl.quality.features"
VERSION = 1


def save_feature_checkpoint(
    path: str | Path,
    model: FeatureQualityModel | GBTQualityModel,
    *,
    stop_rule: StopRule,
    backends: Sequence[str],
    split: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    level_calibration: LevelCalibration | None = None,
) -> Path:
    """Write the model, stop rule, training backends, split and (when not the identity) the level
    map atomically (weights_only loadable)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": state_of(model),
        "stop_rule": stop_rule.to_dict(),
        "backends": sorted(set(map(str, backends))),
        "split": dict(split),
        "metrics": dict(metrics or {}),
    }
    if level_calibration is not None and level_calibration.kind != "none":
        payload["level_calibration"] = level_calibration.to_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_feature_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a feature-model checkpoint (:class:`CheckpointError` naming what is wrong)."""
    path = Path(path)
    payload = safe_torch_load(path, "feature quality")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a feature quality checkpoint (format {fmt!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported feature checkpoint version {payload.get('version')!r}")
    for key in ("model", "stop_rule", "backends", "split"):
        if key not in payload:
            raise CheckpointError(f"{path}: feature checkpoint lacks {key!r}")
    return payload


class FeatureQualityEstimator:
    """Per-(frame, object) J&F estimates and uncertainties from :func:`quality_features`."""

    needs_history = True
    reports_uncertainty = True  # every prediction leaves last_uncertainty (T,)

    def __init__(
        self,
        model: FeatureQualityModel | GBTQualityModel,
        stop_rule: StopRule | None = None,
        backends: Sequence[str] = (),
        name: str = "feature-model",
        split: dict[str, Any] | None = None,
        level_calibration: LevelCalibration | None = None,
    ) -> None:
        self.model = model.eval()
        self.level_calibration = level_calibration or LevelCalibration()
        # the videos the model was trained on (ivos_rl.data.splits.split_record), as QualityEstimator
        self.split = split
        self.stop_rule = stop_rule or StopRule()
        self.backends = tuple(backends)
        self.name = name
        self.last_uncertainty: np.ndarray | None = None
        self.last_uncertainty_k: np.ndarray | None = None
        # optional signal groups the model was trained with (ivos_rl.quality.features.OPTIONAL_GROUPS);
        # with "motion" the video's flows are kept between calls
        self.signal_groups = groups_of(model.names)
        self._motion = MotionCache() if "motion" in self.signal_groups else None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, backend: VOSBackend | str | None = None
    ) -> FeatureQualityEstimator:
        """Estimator from a checkpoint; with ``backend`` (object or fingerprint) it is checked at once."""
        payload = load_feature_checkpoint(path)
        try:
            model = model_from_any_state(payload["model"])
        except (KeyError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: feature model weights do not load: {exc}") from exc
        split = read_split_record(payload["split"], str(path))
        try:
            calib = LevelCalibration.from_dict(payload.get("level_calibration", {"kind": "none"}))
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        est = cls(
            model, StopRule(**payload["stop_rule"]), payload["backends"], name=str(path), split=split,
            level_calibration=calib,
        )
        if backend is not None:
            est.check_backend(backend)
        return est

    def check_backend(self, backend: VOSBackend | str) -> bool:
        """True when ``backend`` is one the model was trained on; otherwise warn (once) naming both.

        Settings that only decide where results are cached (``*cache*`` fields) are ignored.
        """
        return warn_other_backend(self.name, self.backends, backend)

    def predict(
        self,
        frames: np.ndarray,
        probs: np.ndarray,
        *,
        history: Sequence[int] | None = None,
        diagnostics: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``q (T,)`` and ``q_k (T, K)`` in [0, 1]; ``history`` (annotated frames so far) is required."""
        if history is None:
            raise InputValidationError(
                "FeatureQualityEstimator.predict needs history= (the annotated frames so far)"
            )
        # Only the diagnostics the model was trained with (a backend may offer more); a missing one
        # is caught by the column check below.
        used = {n.removeprefix("diag_") for n in self.model.names if n.startswith("diag_")}
        diagnostics = {k: v for k, v in (diagnostics or {}).items() if k in used}
        x = quality_features(
            frames, probs, history, diagnostics, self.signal_groups, motion_cache=self._motion
        )
        names = feature_names(diagnostics or {}, self.signal_groups)
        if any(is_context(n) for n in self.model.names):
            x, names = add_context(x, names)
        # The model may use a subset of the signals (trained with data.drop_columns), never more.
        have = set(names)
        missing = [n for n in self.model.names if not is_context(n) and n not in have]
        if missing:
            raise InputValidationError(
                f"the model expects signals {missing} this input does not give: pass the same backend "
                "diagnostics it was trained with"
            )
        t, k, n_feat = x.shape
        mu, sd = self.model.predict_rows(x.reshape(t * k, n_feat), names)
        qk = self.level_calibration.apply(mu.reshape(t, k))  # clipped to [0, 1]
        sdk = sd.reshape(t, k).astype(np.float32)
        self.last_uncertainty_k = sdk
        self.last_uncertainty = sdk.mean(axis=1)
        return qk.mean(axis=1).astype(np.float32), qk

    def expected_gain(self, q: np.ndarray) -> float:
        """Expected mean-J&F gain of one more annotation (see :mod:`ivos_rl.quality.stop`)."""
        return self.stop_rule.expected_gain(q)
