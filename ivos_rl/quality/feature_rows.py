"""Feature rows from the interactive loop: one row per (round, frame, object) with its true J&F.

Sample generation (:func:`ivos_rl.quality.samples.generate_samples`) calls
:meth:`FeatureRecorder.add` once per round with the backend output and the annotation history; the
recorder keeps every frame (rows are ~100 bytes, so a whole video per round is cheap), which also
lets evaluation replay each trajectory for the stop signal. Each row records the fingerprint of the
backend that produced it (:func:`ivos_rl.backends.cached.backend_fingerprint`), so one file can mix
backend versions and a model can tell which it was trained on.

File: ``features.npz`` (arrays, written atomically) next to the crop shards; the feature names are
stored in it, and loading refuses a file whose names differ from the extractor's.

Degraded rows (:mod:`ivos_rl.quality.degraded`, issue #15): rows of a deliberately spoiled copy of a
round's output (all-empty, shifted, ...) with the true J&F of that copy. They carry the kind in the
``degraded`` column ("" for the backend's own output); a file without degraded rows has no such
column (files written before it existed read as all-original), so the default bytes do not change.
Degraded rows form their own (trajectory, round) groups and are never paired with crop samples.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivos_rl.backends.base import BackendOutput
from ivos_rl.errors import CorruptFileError, DatasetError, MissingDataError
from ivos_rl.quality.features import check_groups, feature_names, quality_features
from ivos_rl.quality.motion import MotionCache
from ivos_rl.utils.io import atomic_path

FILE = "features.npz"
_COLUMNS = ("x", "jf", "j", "f", "sequence", "frame", "object_id", "round", "strategy", "init", "backend")
ALL_COLUMNS = (*_COLUMNS, "degraded")


@dataclass
class FeatureRows:
    """Feature rows in memory: ``x`` (N, F) float32 with column ``names``, targets and provenance."""

    x: np.ndarray
    jf: np.ndarray
    j: np.ndarray
    f: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    object_id: np.ndarray
    round: np.ndarray
    strategy: np.ndarray
    init: np.ndarray
    backend: np.ndarray  # backend fingerprint per row
    names: tuple[str, ...]
    # kind of a degraded row, "" for the backend's output (not given: every row is original)
    degraded: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U1"))
    _groups: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.degraded.size == 0 and len(self.jf):
            self.degraded = np.full(len(self.jf), "")

    @property
    def original(self) -> np.ndarray:
        """(N,) bool: rows of the backend's own output (not degraded copies)."""
        return self.degraded == ""

    def __len__(self) -> int:
        return int(self.jf.shape[0])

    def subset(self, index: np.ndarray) -> FeatureRows:
        """Rows ``index`` (bool mask or integer indices)."""
        return FeatureRows(**{c: getattr(self, c)[index] for c in ALL_COLUMNS}, names=self.names)

    def trajectory_keys(self) -> np.ndarray:
        """(N,) str identifying the trajectory of each row (sequence, init, strategy, backend; a
        degraded row's kind is appended, so its round is a group of its own)."""
        parts = [self.sequence, self.init.astype(str), self.strategy, self.backend]
        keys = ["|".join(p) for p in zip(*parts, strict=True)]
        if not self.original.all():  # (built as str before the array: a fixed-width array would cut it)
            kinds = self.degraded.tolist()
            keys = [k if not d else f"{k}|degraded:{d}" for k, d in zip(keys, kinds, strict=True)]
        return np.array(keys)

    def round_groups(self) -> np.ndarray:
        """(N,) int64 id of each row's (trajectory, round, object) group: the frames one Worst pick
        chooses among (what a ranking loss compares; a degraded copy's round is a group of its own).

        Built once per row set and kept (read-only): a cross-validation asks for it in every fit
        (~1 s on 98k rows). The rows are never changed in place (:meth:`subset` makes new ones)."""
        if self._groups is None:
            keys = [
                f"{k}|{r}|{o}"
                for k, r, o in zip(self.trajectory_keys().tolist(), self.round.tolist(),
                                   self.object_id.tolist(), strict=True)
            ]
            groups = np.unique(np.array(keys), return_inverse=True)[1].reshape(-1).astype(np.int64)
            groups.flags.writeable = False
            self._groups = groups
        return self._groups

    def save(self, out_dir: str | Path) -> Path:
        """Write ``features.npz`` in ``out_dir`` atomically."""
        path = Path(out_dir) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            cols = ALL_COLUMNS if not self.original.all() else _COLUMNS  # no degraded row: no column
            np.savez_compressed(fh, names=np.array(self.names), **{c: getattr(self, c) for c in cols})
        return path

    @classmethod
    def concatenate(cls, sets: Sequence[FeatureRows]) -> FeatureRows:
        if not sets:
            raise DatasetError("no feature rows to concatenate")
        names = {s.names for s in sets}
        if len(names) != 1:
            raise DatasetError(f"feature-row sets have different columns: {sorted(names)}")
        return cls(
            **{c: np.concatenate([getattr(s, c) for s in sets]) for c in ALL_COLUMNS}, names=sets[0].names
        )


class FeatureRecorder:
    """Accumulates the feature rows of one backend round by round; :meth:`write` saves them atomically.

    ``signal_groups`` adds optional columns (:data:`ivos_rl.quality.features.OPTIONAL_GROUPS`; models
    can then be trained with and without them); ``motion`` computes a video's flows once for all its
    rounds."""

    def __init__(self, backend: str, signal_groups: Sequence[str] = ()) -> None:
        self.backend = backend  # fingerprint recorded on every row
        self.parts: list[dict[str, np.ndarray]] = []
        self.signal_groups = check_groups(signal_groups)
        self._motion = MotionCache() if "motion" in self.signal_groups else None

    def add(
        self,
        frames: np.ndarray,
        out: BackendOutput,
        history: Sequence[int],
        j: np.ndarray,
        f: np.ndarray,
        key: tuple[str, str, int, int],
        degraded: str = "",
    ) -> None:
        """Rows of every (frame, object) of one round.

        ``j``/``f`` are the true (T, K) J and F of ``out.masks``; ``key`` is (sequence, strategy,
        initial-scribble index, round); ``degraded`` the kind when ``out`` is a degraded copy of the
        round's output. Backend diagnostics are read from ``out.diagnostics`` when the backend offers them.
        """
        diagnostics = getattr(out, "diagnostics", None)
        x = quality_features(
            frames, out.probs, history, diagnostics, self.signal_groups, motion_cache=self._motion
        )
        t, k = x.shape[:2]
        n = t * k
        sequence, strategy, init, rnd = key
        self.parts.append(
            {
                "x": x.reshape(n, -1),
                "jf": (0.5 * (j + f)).reshape(n).astype(np.float32),
                "j": np.asarray(j, np.float32).reshape(n),
                "f": np.asarray(f, np.float32).reshape(n),
                "sequence": np.full(n, sequence),
                "frame": np.repeat(np.arange(t), k).astype(np.int32),
                "object_id": np.tile(np.arange(1, k + 1), t).astype(np.int16),
                "round": np.full(n, rnd, np.int16),
                "strategy": np.full(n, strategy),
                "init": np.full(n, init, np.int16),
                "backend": np.full(n, self.backend),
                "degraded": np.full(n, degraded),
                "names": np.array(feature_names(diagnostics or {}, self.signal_groups)),
            }
        )

    def write(self, out_dir: str | Path) -> Path | None:
        """Save ``features.npz`` in ``out_dir`` (None when no row was recorded)."""
        if not self.parts:
            return None
        names = {tuple(p["names"]) for p in self.parts}
        if len(names) != 1:
            raise DatasetError(f"rounds recorded different feature columns: {sorted(names)}")
        arrays = {c: np.concatenate([p[c] for p in self.parts]) for c in ALL_COLUMNS}
        return FeatureRows(**arrays, names=names.pop()).save(out_dir)


def row_index(
    rows: FeatureRows,
    sequence: np.ndarray,
    strategy: np.ndarray,
    init: np.ndarray,
    rnd: np.ndarray,
    frame: np.ndarray,
    object_id: np.ndarray,
    source: str | Path = "<feature rows>",
) -> np.ndarray:
    """Indices into ``rows`` of the (sequence, strategy, init, round, frame, object) keys given
    (e.g. the crop samples of the same generation pass); :class:`DatasetError` naming the first key
    without a row (rows of another pass or an interrupted one must not be paired silently). Only
    original rows are paired (a degraded row shares its round's key but has no crop)."""

    def keys(seq: np.ndarray, strat: np.ndarray, *ints: np.ndarray) -> list[tuple[object, ...]]:
        ints_ = (np.asarray(a).astype(np.int64).tolist() for a in ints)
        return list(zip(seq.tolist(), strat.tolist(), *ints_, strict=True))

    orig = np.flatnonzero(rows.original)
    cols = (rows.sequence, rows.strategy, rows.init, rows.round, rows.frame, rows.object_id)
    lookup = {key: int(i) for i, key in zip(orig, keys(*(c[orig] for c in cols)), strict=True)}
    wanted = keys(sequence, strategy, init, rnd, frame, object_id)
    out = np.empty(len(wanted), np.int64)
    for i, key in enumerate(wanted):
        j = lookup.get(key)
        if j is None:
            raise DatasetError(
                f"no feature row for sample (sequence, strategy, init, round, frame, object) {key}", source
            )
        out[i] = j
    return out


def load_feature_rows(folders: str | Path | Sequence[str | Path]) -> FeatureRows:
    """Rows of ``features.npz`` in each folder (typed errors for a missing or foreign file)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    sets = []
    for folder in folders:
        path = Path(folder) / FILE
        if not path.is_file():
            raise MissingDataError("no feature rows (generate samples with feature_rows=true)", path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {c: data[c] for c in _COLUMNS}
                if "degraded" in data.files:
                    arrays["degraded"] = data["degraded"]
                names = tuple(str(n) for n in data["names"])
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise CorruptFileError(f"cannot read feature rows ({exc})", path) from exc
        base = feature_names()
        if names[: len(base)] != base:
            raise CorruptFileError(
                f"feature rows were written by another feature extractor (columns {list(names)})", path
            )
        if arrays["x"].shape != (len(arrays["jf"]), len(names)):
            raise CorruptFileError(
                f"feature matrix {arrays['x'].shape} does not match {len(names)} names", path
            )
        sets.append(FeatureRows(**arrays, names=names))
    return FeatureRows.concatenate(sets)
