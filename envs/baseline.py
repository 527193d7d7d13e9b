"""Random-policy baseline (mu_hat, sigma_hat) for the goal reward (IVOS-W §3.1, Eq. 2-3).

The goal reward compares the agent's final performance P with what uniformly random frame
choices reach on the same sample. For each (sequence, initial scribble, subsequence start) we
run ``n_episodes`` (>= 30, as the paper) random-policy episodes of the env's horizon T and record
P after every step t. A random policy is memoryless, so the first t steps of a T-step random
episode are a t-step random episode: one set of runs gives the baseline of every sub-task
horizon T' = 1..T (needed by task decomposition) at once.

**Key.** (sequence, scribble_idx, start, T'). With subsequence training the outcome depends on
which N' frames the backend sees, so the subsequence start is part of the key; the env's
"centered" start (the reference's choice) gives one start per sample, "random" starts need a
baseline for every valid start (``FrameRecommendationEnv.subsequence_starts``), which costs
proportionally more. Whole-video episodes use start 0.

**Fit.** P is assumed t-distributed (the paper); ``scipy.stats.t.fit`` gives (df, loc, scale).
``sigma_mode`` chooses what sigma_hat means:

* ``"t_scale"`` (default): mu_hat = loc, sigma_hat = scale. The scale is always finite, while the
  t's standard deviation ``scale * sqrt(df / (df - 2))`` is infinite for df <= 2, which fits of 30
  points with one outlier do produce;
* ``"t_std"``: mu_hat = loc, sigma_hat = the t's standard deviation (an error if df <= 2);
* ``"sample"``: mu_hat = mean, sigma_hat = sample std (ddof = 1), what the reference code does.

A sigma below ``min_sigma`` (e.g. all random runs give the same P, typically a sample that any
choice segments perfectly) is raised to ``min_sigma`` and the entry is marked ``clamped``: the
reward is then (P - mu - min_sigma) / min_sigma, finite and negative unless the agent beats the
random runs, instead of a division by ~0.

**Cache.** The result is written once as JSON (atomically) with a ``meta`` fingerprint of what
produced it (dataset, backend, robot, horizon, N', metric settings...); loading with a different
fingerprint is refused rather than silently reusing numbers from another setup. Its ``samples``
are the exception: every entry is seeded by its own (sequence, scribble, start), so a baseline of
more samples holds exactly the numbers a baseline of fewer would, and one cache serves every
training split of a dataset (cross-validation folds); samples it lacks are built and merged in
(:meth:`RandomBaseline.merged`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from ivos_rl.errors import CheckpointError, ConfigError, CorruptFileError, InputValidationError
from ivos_rl.metrics import METRIC_KEYS
from ivos_rl.utils.io import atomic_write_json
from ivos_rl.utils.logging import get_logger
from ivos_rl.utils.seed import name_seed

SigmaMode = Literal["t_scale", "t_std", "sample"]
METRICS: tuple[str, ...] = METRIC_KEYS  # the one list (ivos_rl.metrics)
FORMAT = "ivos-rl/random-baseline"
VERSION = 1
MIN_EPISODES = 30
SAMPLES_KEY = "samples"  # the meta entry a cache may hold more of than a run asks for
_log = get_logger(__name__)


@dataclass(frozen=True)
class BaselineFit:
    """Fitted statistics of the random policy's P for one key and metric."""

    mu: float
    sigma: float
    df: float
    loc: float
    scale: float
    mean: float
    std: float
    n: int
    clamped: bool


def fit_t(values: Iterable[float], sigma_mode: SigmaMode = "t_scale", min_sigma: float = 0.01) -> BaselineFit:
    """Fit a t-distribution to random-policy outcomes and derive (mu_hat, sigma_hat)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)):
        raise InputValidationError(f"need >= 2 finite values to fit a baseline, got {v.tolist()}")
    if sigma_mode not in ("t_scale", "t_std", "sample"):
        raise ConfigError(f"sigma_mode must be 't_scale', 't_std' or 'sample', got {sigma_mode!r}")
    if not min_sigma > 0.0:
        raise ConfigError(f"min_sigma must be > 0, got {min_sigma}")
    mean, std = float(v.mean()), float(v.std(ddof=1))
    if float(np.ptp(v)) <= 1e-12:
        df, loc, scale = math.inf, mean, 0.0  # degenerate: every random run gave the same P
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # optimiser overflow probes near df -> inf
            # Starting the MLE at the sample moments halves the optimiser's work (same optimum).
            df, loc, scale = (float(x) for x in stats.t.fit(v, 5.0, loc=mean, scale=max(std, 1e-6)))
    if sigma_mode == "sample":
        mu, sigma = mean, std
    elif sigma_mode == "t_scale":
        mu, sigma = loc, scale
    else:
        if not df > 2.0:
            raise ConfigError(
                f"t fit has df={df:.3g} <= 2, whose standard deviation is infinite; use sigma_mode='t_scale'"
            )
        mu, sigma = loc, (0.0 if math.isinf(df) and scale == 0.0 else scale * math.sqrt(df / (df - 2.0)))
    clamped = sigma < min_sigma
    return BaselineFit(
        mu=float(mu),
        sigma=float(max(sigma, min_sigma)),
        df=float(df),
        loc=float(loc),
        scale=float(scale),
        mean=mean,
        std=std,
        n=int(v.size),
        clamped=bool(clamped),
    )


def _key(sequence: str, scribble_idx: int, start: int) -> str:
    return f"{sequence}|{int(scribble_idx)}|{int(start)}"


class RandomBaseline:
    """Lookup of (mu_hat, sigma_hat) per (sequence, scribble, start, horizon, metric)."""

    def __init__(
        self,
        values: dict[str, dict[str, list[list[float]]]],
        horizon: int,
        sigma_mode: SigmaMode = "t_scale",
        min_sigma: float = 0.01,
        meta: dict[str, Any] | None = None,
        fits: dict[str, dict[str, Any]] | None = None,
        fit_metrics: Iterable[str] = METRICS,
    ) -> None:
        """``values[key][metric][t - 1]`` holds P after t random steps, one value per episode.

        Fits are made for ``fit_metrics`` only (a fit costs tens of ms; the raw values of every
        metric are kept, so another metric can be fitted later from the same runs).
        """
        fit_metrics = tuple(fit_metrics)
        bad = [m for m in fit_metrics if m not in METRICS]
        if bad or not fit_metrics:
            raise ConfigError(f"fit_metrics must be a non-empty subset of {METRICS}, got {list(fit_metrics)}")
        self.values = values
        self.horizon = int(horizon)
        self.sigma_mode = sigma_mode
        self.min_sigma = float(min_sigma)
        self.meta = dict(meta or {})
        if fits is None:
            fits = {}
            for key, per_metric in values.items():
                for metric, per_t in per_metric.items():
                    if metric not in fit_metrics:
                        continue
                    for t, runs in enumerate(per_t, start=1):
                        fits[f"{key}|{t}|{metric}"] = asdict(fit_t(runs, sigma_mode, min_sigma))
            clamped = sum(bool(f["clamped"]) for f in fits.values())
            if clamped:
                _log.warning(
                    "%d of %d baseline fits had sigma < %g and were clamped", clamped, len(fits), min_sigma
                )
        self.fits = fits

    def stats(
        self, sequence: str, scribble_idx: int, start: int, horizon: int, metric: str
    ) -> tuple[float, float]:
        """(mu_hat, sigma_hat) of the random policy's P after ``horizon`` steps."""
        if metric not in METRICS:
            raise ConfigError(f"baseline metric must be one of {METRICS}, got {metric!r}")
        if not 1 <= int(horizon) <= self.horizon:
            raise ConfigError(f"baseline covers horizons 1..{self.horizon}, asked for {horizon}")
        name = f"{_key(sequence, scribble_idx, start)}|{int(horizon)}|{metric}"
        fit = self.fits.get(name)
        if fit is None and _key(sequence, scribble_idx, start) in self.values:
            raise ConfigError(
                f"random baseline has no fit for metric {metric!r}; rebuild it with that metric"
            )
        if fit is None:
            raise ConfigError(
                f"random baseline has no entry for sequence={sequence!r} scribble={scribble_idx} "
                f"start={start}; rebuild it for this dataset/subsequence setting"
            )
        return float(fit["mu"]), float(fit["sigma"])

    def fit(self, sequence: str, scribble_idx: int, start: int, horizon: int, metric: str) -> BaselineFit:
        """All fitted numbers of one entry (for reports)."""
        self.stats(sequence, scribble_idx, start, horizon, metric)
        return BaselineFit(**self.fits[f"{_key(sequence, scribble_idx, start)}|{int(horizon)}|{metric}"])

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "horizon": self.horizon,
            "sigma_mode": self.sigma_mode,
            "min_sigma": self.min_sigma,
            "meta": self.meta,
            "values": self.values,
            "fits": self.fits,
        }

    def save(self, path: str | Path) -> Path:
        """Write the baseline atomically (a crash never leaves a half-written cache)."""
        return atomic_write_json(path, self.to_json(), indent=None)

    @property
    def samples(self) -> list[tuple[str, int]]:
        """The (sequence, scribble) samples the baseline was built for (its ``meta``)."""
        return [(str(s), int(i)) for s, i in self.meta.get(SAMPLES_KEY, [])]

    def missing(self, samples: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Those of ``samples`` the baseline was not built for, in the given order."""
        have = set(self.samples)
        return [(str(s), int(i)) for s, i in samples if (str(s), int(i)) not in have]

    def merged(self, other: RandomBaseline) -> RandomBaseline:
        """This baseline plus ``other``'s samples (built for the same setup: every meta key but the
        samples must agree). Exact: each entry depends only on its own sample's seeds."""
        mine = {k: v for k, v in self.meta.items() if k != SAMPLES_KEY}
        theirs = {k: v for k, v in other.meta.items() if k != SAMPLES_KEY}
        settings = (self.horizon, self.sigma_mode, self.min_sigma)
        if mine != theirs or settings != (other.horizon, other.sigma_mode, other.min_sigma):
            raise ConfigError("cannot merge random baselines built for different setups")
        samples = dict.fromkeys(self.samples + other.samples)  # ordered union
        meta = {**self.meta, SAMPLES_KEY: [[s, i] for s, i in samples]}
        return RandomBaseline(
            {**self.values, **other.values}, self.horizon, self.sigma_mode, self.min_sigma, meta,
            fits={**self.fits, **other.fits},
        )

    @classmethod
    def load(
        cls, path: str | Path, expected_meta: dict[str, Any] | None = None, *, partial: bool = False
    ) -> RandomBaseline:
        """Read a cached baseline; refuse a file built for another setup (``expected_meta``).

        The cache may hold more samples than ``expected_meta`` asks for (see the module docstring);
        fewer is refused unless ``partial`` (the caller then builds the :meth:`missing` ones).
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"random baseline cache not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptFileError(f"random baseline cache is not valid JSON ({err})", path) from err
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise CheckpointError(f"{path} is not a random baseline cache (format {FORMAT} v{VERSION})")
        stored = data.get("meta", {})
        if expected_meta is not None:
            diffs = [
                f"{k}: cached {stored.get(k)!r} vs requested {v!r}" for k, v in expected_meta.items()
                if k != SAMPLES_KEY and stored.get(k) != v
            ]
            if diffs:
                raise CheckpointError(
                    f"random baseline {path} was built for another setup ({'; '.join(diffs)}); "
                    "delete it, point baseline.path elsewhere or rebuild with baseline.overwrite=true"
                )
        baseline = cls(
            values=data["values"],
            horizon=int(data["horizon"]),
            sigma_mode=data["sigma_mode"],
            min_sigma=float(data["min_sigma"]),
            meta=stored,
            fits=data["fits"],
        )
        if expected_meta is not None and SAMPLES_KEY in expected_meta and not partial:
            lacking = baseline.missing(expected_meta[SAMPLES_KEY])
            if lacking:
                raise CheckpointError(
                    f"random baseline {path} lacks {len(lacking)} of the requested samples "
                    f"(e.g. {lacking[:3]}); scripts/build_baseline.py adds them to the cache"
                )
        return baseline


def build_random_baseline(
    env: Any,
    n_episodes: int = MIN_EPISODES,
    seed: int = 0,
    sigma_mode: SigmaMode = "t_scale",
    min_sigma: float = 0.01,
    samples: list[tuple[str, int]] | None = None,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    fit_metrics: Iterable[str] = METRICS,
) -> RandomBaseline:
    """Run random-policy episodes on ``env`` for every sample and start; fit the baseline.

    ``env`` is a :class:`~ivos_rl.envs.FrameRecommendationEnv` (its own reward needs no baseline:
    only ``info['performance']`` is read). Episode ``e`` of sample ``i`` at start ``s`` is seeded
    with ``(seed, i, s, e)``, so any subset of samples gives the same numbers.
    """
    from tqdm.auto import tqdm

    if int(n_episodes) < MIN_EPISODES:
        raise ConfigError(f"n_episodes must be >= {MIN_EPISODES} for a t fit (paper: 30), got {n_episodes}")
    todo = [
        (seq, idx, start)
        for seq, idx in (samples if samples is not None else env.samples)
        for start in env.subsequence_starts(seq, idx)
    ]
    horizon = int(env.horizon)
    values: dict[str, dict[str, list[list[float]]]] = {}
    bar = tqdm(
        total=len(todo) * int(n_episodes), desc="random baseline", unit="episode", disable=not progress
    )
    for seq, idx, start in todo:
        runs = {m: [[0.0] * int(n_episodes) for _ in range(horizon)] for m in METRICS}
        for e in range(int(n_episodes)):
            ss = np.random.SeedSequence([int(seed), name_seed(seq, idx), int(start), e])
            rng = np.random.default_rng(ss)
            options = {"sample": (seq, idx), "start": start}
            _, info = env.reset(seed=int(ss.generate_state(1)[0]), options=options)
            n = info["jf"].shape[0]
            for t in range(horizon):
                _, _, _, _, info = env.step(int(rng.integers(n)))
                for m in METRICS:
                    runs[m][t][e] = float(info["performance"][m])
            bar.update(1)
        values[_key(seq, idx, start)] = runs
    bar.close()
    return RandomBaseline(values, horizon, sigma_mode, min_sigma, meta, fit_metrics=fit_metrics)
