"""Classical CPU interactive VOS: graph-cut segmentation of annotated frames + flow propagation.

Pipeline per round:

1. The annotated frame is segmented from *all* its strokes so far (:mod:`._interactive_seg`):
   colour and motion histograms + a spatial prior (its current prediction, loosened around the
   new strokes) + a contrast-sensitive Potts term, solved by graph cut; stroke pixels are hard
   constraints, so a refinement can never undo an earlier correction, and the cut may only
   change the prediction near the new strokes (``SegParams.change_radius``).
2. Rounds are local and incremental (as in MANet, ATNet, MiVOS): the backend keeps each
   frame's soft labels and each annotated frame's run towards its annotated neighbours between
   rounds, and an annotation on frame k only recomputes the frames between k's nearest
   annotated neighbours (or the video's ends). k's labels are carried outwards frame by frame
   with dense optical flow (DIS, computed once per sequence in :meth:`PropagationBackend.reset`);
   every step is corrected by colour: a model of all annotated frames mixed with one refitted
   on the previous frame near the object boundary (appearance drifts), acting only near the
   warped boundary; pixels failing the forward-backward flow check (occlusions) fall back to an
   uninformative prior.
3. Inside the span, the new run is fused with the rest (the neighbour's run and/or the frame's
   previous labels, ``PropParams.keep_previous``) by temporal distance (weight 1 at k, 0 at an
   annotated neighbour) and per-pixel certainty; annotated frames keep their own segmentation,
   and frames outside the span are byte-identical to the previous round (``changed_frames`` of
   the output lists the others). Labels compete through a softmax over background + objects
   (masks are the argmax, ``check_backend(mask_rule="argmax")``), and stray fragments are
   dropped.

Everything runs at a configurable working height and is resized back to the input resolution.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from ivos_rl.backends._colour_model import ColourModel, quantise_colours
from ivos_rl.backends._distance import exact_distance
from ivos_rl.backends._flow import DIS_PRESETS, Warper, as_float32, compute_flows, load_flows, save_flows
from ivos_rl.backends._interactive_seg import (
    FrameSegmenter,
    SegParams,
    Stroke,
    argmax0,
    bbox,
    quantise_motion,
    rasterise,
)
from ivos_rl.backends.base import (
    BackendOutput,
    VOSBackend,
    lookup_uint8,
    probs_to_uint8,
    validate_frames,
    validate_interaction,
    validate_n_objects,
)
from ivos_rl.backends.registry import register_backend
from ivos_rl.errors import BackendError, CorruptFileError, InputValidationError, IvosError, ScribbleError
from ivos_rl.utils.logging import get_logger

_OBJECT_PRESENT = 250  # a pixel counts for an object's box when background prob < 250/255

_log = get_logger(__name__)


@dataclass(frozen=True)
class PropParams:
    """Weights of one propagation step (log-space fusion of warped labels and colour).

    Defaults were tuned on the tuning split of ``benchmarks/bench_propagation.py``.
    ``fb_sigma``: forward-backward flow error (px) at which a warped label loses ~40 % of its
    trust; untrusted pixels get a uniform prior so that colour decides them (occlusions).
    ``colour_band``: width (px) of the band around the warped boundary where colour acts.
    ``local_mix``: weight of the colour model refitted near the previous frame's boundary
    against the model of all annotated frames; ``local_band``/``local_gap``: the pixels it uses.
    ``min_fragment``: pieces smaller than this fraction of an object's largest piece are dropped.
    ``span_power``, ``fusion_certainty``, ``keep_previous``: inside the span of a new annotation
    on frame k, the run from k is fused per pixel with the rest (``keep_previous`` x the frame's
    previous soft labels + the complement x the run from the annotated neighbour on that side)
    with weights temporal x certainty ** ``fusion_certainty`` (certainty: top probability
    rescaled from [1/L, 1] to [0, 1]); the run's temporal weight is d_o^p / (d_o^p + d^p) with
    p = ``span_power``, d the distance to k and d_o to that neighbour (see ``_blend``).

    Speed knobs: ``warp_cache`` = 1 (the default since session 12; outputs unchanged, so it is
    left out of the backend's fingerprint: :attr:`PERFORMANCE_ONLY`) keeps, per frame pair and
    direction once used, what a step derives from the flows alone: the sampling maps, the
    forward-backward confidence and the squared motion (a fifth of a step's time: float16 ->
    float32 conversions and the backward-flow warp); the same numbers as computed on each step's
    box, at ~1.6 MB per pair and direction (240x427). The env replays the same videos and an
    episode's rounds cross the same frame pairs again, so most steps find them kept.
    ``warp_cache_mb`` bounds that memory per backend (and its forks, which share it): the least
    recently used pairs are dropped beyond it (also speed-only). ``local_every`` = n refits the
    local colour model on every n-th step of a run only, the steps between reusing the last fit
    (changes the outputs, so a non-default value enters the fingerprint).

    The uninformative prior of unreliable pixels (opt-in knobs, issue 14; the defaults are version
    2's prior): a pixel whose forward-backward check fails (trust ``c`` < 1) gets ``c`` x its
    warped labels + (1 - ``c``) x a prior. That prior is how an object the flow lost is found again
    by colour, but every such pixel also lifts every label above ``prior_floor``, so the pixels
    carried on (and each step's box) grow towards the whole frame. ``uniform_weight`` = w makes
    the prior w x uniform (1/L) + (1 - w) x the warped labels (1: uniform, version 2; 0: no prior,
    the warp alone); ``uniform_reach`` = r applies it only within r px (Euclidean) of the previous
    frame's objects (pixels whose argmax label is an object), beyond which the warped labels stay
    as they are (there: background). Default r = inf (everywhere, version 2).

    A fixed reach in pixels is wrong for fast objects (reach 32 loses soccerball, 64 is wide for a
    slow one): ``reach_motion`` = c > 0 makes each step's reach follow the object's motion between
    the two frames, r_t = max(``uniform_reach``, c x m_t), with ``uniform_reach`` as the floor r_min
    (so it must be finite) and m_t the ``reach_quantile`` quantile (linear interpolation) of the flow
    magnitude (px, from the previous to the next frame, the flows the step warps with) over the
    previous frame's object pixels, all objects together (:func:`_object_motion`). c = 0 (default)
    is the fixed reach. ``reach_memory`` = n takes m_t as the largest such motion of the run's last
    n steps (1: this step only): an object the flow starts to lose keeps being tracked on its few
    remaining pixels, which barely move, while the object itself goes on at its speed (soccerball).
    Measured in session 9 (30 videos, scribbles 1-3): with memory it ties reach 64 on the mean, and
    per-fold CV does not choose it stably (benchmarks/RESULTS.md, #14).
    """

    prior_weight: float = 1.0
    colour_weight: float = 0.15
    prior_floor: float = 0.02
    fb_sigma: float = 0.5
    colour_band: float = 3.0
    local_mix: float = 0.8
    local_band: float = 10.0
    local_gap: float = 0.0
    smooth_sigma: float = 0.8
    min_fragment: float = 0.1
    stroke_weight: float = 20.0
    roi_margin: float = 16.0
    fusion_certainty: float = 3.0
    span_power: float = 1.0
    keep_previous: float = 0.0
    warp_cache: int = 1
    warp_cache_mb: float = 256.0
    local_every: int = 1
    uniform_weight: float = 1.0
    uniform_reach: float = math.inf
    reach_motion: float = 0.0
    reach_quantile: float = 0.9
    reach_memory: int = 1

    #: Knobs that change the speed only, never an output (tested): left out of the fingerprint,
    #: so runs and caches with and without them mix.
    PERFORMANCE_ONLY: ClassVar[frozenset[str]] = frozenset({"warp_cache", "warp_cache_mb"})


@dataclass
class _Crop:
    """Soft labels of one frame: uint8 probabilities (L, h, w) inside a box, background outside.

    Channel-first so that per-label operations are whole-plane numpy/OpenCV calls.
    """

    box: tuple[slice, slice] | None
    probs: np.ndarray | None

    def region(self, box: tuple[slice, slice], n_labels: int) -> np.ndarray:
        """(L, h, w) float32 probabilities inside ``box`` (frame coordinates)."""
        return _to_float(self.region_uint8(box, n_labels))

    def region_uint8(self, box: tuple[slice, slice], n_labels: int) -> np.ndarray:
        """(L, h, w) uint8 probabilities (x 255) inside ``box`` (frame coordinates)."""
        out = np.zeros((n_labels, box[0].stop - box[0].start, box[1].stop - box[1].start), dtype=np.uint8)
        out[0] = 255
        if self.box is None or self.probs is None:
            return out
        y0, y1 = max(box[0].start, self.box[0].start), min(box[0].stop, self.box[0].stop)
        x0, x1 = max(box[1].start, self.box[1].start), min(box[1].stop, self.box[1].stop)
        if y0 < y1 and x0 < x1:
            out[:, y0 - box[0].start : y1 - box[0].start, x0 - box[1].start : x1 - box[1].start] = (
                self.probs[:, y0 - self.box[0].start : y1 - self.box[0].start,
                           x0 - self.box[1].start : x1 - self.box[1].start]
            )
        return out


def _to_float(p: np.ndarray) -> np.ndarray:
    """uint8 probabilities as float32 in [0, 1] (``p.astype(np.float32) / 255``, one pass)."""
    return np.divide(p, np.float32(255.0), dtype=np.float32)


#: float64(float32(v / 255)), v = 0..255: uint8 probabilities as the float32 weights they were, widened.
_FLOAT64_OF_UINT8 = _to_float(np.arange(256, dtype=np.uint8)).astype(np.float64)
_FLOAT64_OF_UINT8.flags.writeable = False

#: Names of the optional ``diagnostics`` (``PropagationBackend(diagnostics=True)``), in column order.
DIAGNOSTIC_NAMES: tuple[str, ...] = ("runs_iou", "runs_xor_rel")
#: Their value where a frame is reached by fewer than two runs (annotated, or one-sided).
_AGREE_DEFAULT = np.array([1.0, 0.0], dtype=np.float32)


@dataclass
class _Round:
    """What one round changes, computed before any state is touched (so a failure leaves no trace).

    ``soft`` maps every recomputed frame (the annotated one and its span) to its new soft labels
    (L, h, w) uint8 at working resolution; ``runs`` the new runs (``(source, direction)`` ->
    one crop per step) of the annotated frame and the neighbours' runs, cut where they now stop;
    ``probs``/``masks`` are the complete new output; ``timings`` the CPU seconds of its parts.
    """

    frame: int
    strokes: list[Stroke]
    labels: np.ndarray
    colour: ColourModel
    soft: dict[int, np.ndarray]
    runs: dict[tuple[int, int], list[_Crop]]
    probs: np.ndarray
    masks: np.ndarray
    timings: dict[str, float]


@dataclass(frozen=True)
class _WarpMaps:
    """What a step from frame t_src to t_dst derives from the flows alone, for the whole frame
    (H, W) float32: the backward sampling maps ``mx``/``my`` (t_dst pixel -> t_src position), the
    forward-backward ``confidence`` of that warp, and ``motion2``, t_src's squared motion."""

    mx: np.ndarray
    my: np.ndarray
    confidence: np.ndarray
    motion2: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.mx.nbytes + self.my.nbytes + self.confidence.nbytes + self.motion2.nbytes


class _WarpStore:
    """``PropParams.warp_cache``: (video key, t_src, t_dst) -> :class:`_WarpMaps`, filled on first
    use, the least recently used dropped beyond ``budget`` bytes (``warp_cache_mb``). A pure cache
    (the same numbers either way), so a backend and its forks share one."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.nbytes = 0
        self._maps: OrderedDict[tuple[str, int, int], _WarpMaps] = OrderedDict()

    def get(self, key: tuple[str, int, int]) -> _WarpMaps | None:
        maps = self._maps.get(key)
        if maps is not None:
            self._maps.move_to_end(key)
        return maps

    def put(self, key: tuple[str, int, int], maps: _WarpMaps) -> None:
        """Keep ``maps`` (not when they alone exceed the budget), dropping the oldest to fit."""
        if maps.nbytes > self.budget or key in self._maps:
            return
        self._maps[key] = maps
        self.nbytes += maps.nbytes
        while self.nbytes > self.budget:
            _, old = self._maps.popitem(last=False)
            self.nbytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._maps)


@dataclass
class _FlowCache:
    """A video's flows, and each annotated frame's binned motion ((frame, bins) -> (H, W) uint16)
    once computed: an RL episode annotates the frames of the same video again and again.
    ``key``: the video's digest (:meth:`PropagationBackend._flows_for`), which names its warps in
    the backend's :class:`_WarpStore`."""

    fwd: np.ndarray
    bwd: np.ndarray
    motion_bins: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    key: str = ""


@register_backend("propagation")
class PropagationBackend(VOSBackend):
    """Real CPU backend: graph cut on annotated frames, optical-flow propagation with colour
    correction. Receives one round of scribbles at a time and accumulates them itself.

    ``working_height`` caps the processing height (None: native); ``flow_preset`` is the DIS
    preset; ``flow_cache_size`` keeps the flows of that many recent videos (RL episodes replay
    the same video); ``flow_cache_dir`` also keeps them on disk, keyed by the frames' content
    and preset, so separate runs over the same videos (one per strategy, annotator or seed)
    compute each video's flows once (a damaged file is recomputed and replaced, never trusted);
    ``seg`` / ``prop`` override :class:`SegParams` / :class:`PropParams`.
    """

    name: ClassVar[str] = "propagation"
    #: 2: the cut changes an annotated frame only near its new strokes; per-frame state, local
    #: rounds and ``changed_frames`` (``seg.change_radius=0`` gives version 1's outputs again).
    version: ClassVar[str | None] = "2"
    wants_all_scribbles: ClassVar[bool] = False
    accepts_clicks: ClassVar[bool] = False
    uses_ground_truth: ClassVar[bool] = False

    def __init__(
        self,
        working_height: int | None = 240,
        flow_preset: str = "fine",
        colour_bins: int = 16,
        flow_cache_size: int = 2,
        seg: dict[str, float] | None = None,
        prop: dict[str, float] | None = None,
        flow_cache_dir: str | Path | None = None,
        diagnostics: bool = False,
    ) -> None:
        if not isinstance(diagnostics, bool):
            raise InputValidationError(f"diagnostics must be true or false, got {diagnostics!r}")
        if working_height is not None and (
            isinstance(working_height, bool) or not isinstance(working_height, int) or working_height < 16
        ):
            raise InputValidationError(f"working_height must be None or an int >= 16, got {working_height!r}")
        if isinstance(flow_cache_size, bool) or not isinstance(flow_cache_size, int) or flow_cache_size < 0:
            raise InputValidationError(f"flow_cache_size must be an int >= 0, got {flow_cache_size!r}")
        if isinstance(colour_bins, bool) or not isinstance(colour_bins, int) or not 2 <= colour_bins <= 40:
            raise InputValidationError(f"colour_bins must be an int in [2, 40], got {colour_bins!r}")
        if flow_preset not in DIS_PRESETS:
            raise InputValidationError(
                f"flow_preset must be one of {sorted(DIS_PRESETS)}, got {flow_preset!r}"
            )
        self.working_height = working_height
        self.flow_preset = flow_preset
        self.colour_bins = colour_bins
        self.flow_cache_size = flow_cache_size
        self.flow_cache_dir = None if flow_cache_dir in (None, "") else Path(flow_cache_dir)
        self._diagnostics = diagnostics
        self.seg_params: SegParams = _override(SegParams(), seg, "seg")
        self.prop_params: PropParams = _override(PropParams(), prop, "prop")
        if self.prop_params.warp_cache not in (0, 1):
            raise InputValidationError(f"prop.warp_cache must be 0 or 1, got {prop}")
        if self.prop_params.local_every < 1:
            raise InputValidationError(f"prop.local_every must be >= 1, got {prop}")
        if self.prop_params.uniform_weight > 1:
            raise InputValidationError(f"prop.uniform_weight must be in [0, 1], got {prop}")
        if self.prop_params.reach_memory < 1:
            raise InputValidationError(f"prop.reach_memory must be >= 1, got {prop}")
        if self.prop_params.reach_quantile > 1:
            raise InputValidationError(f"prop.reach_quantile must be in [0, 1], got {prop}")
        if self.prop_params.reach_motion > 0 and math.isinf(self.prop_params.uniform_reach):
            raise InputValidationError(
                f"prop.reach_motion > 0 needs a finite prop.uniform_reach (its floor r_min), got {prop}"
            )
        self._flow_cache: OrderedDict[str, _FlowCache] = OrderedDict()
        self._warp_store = _WarpStore(self.prop_params.warp_cache_mb * 2**20)
        #: ``warp_cache_mb`` = 0 keeps nothing: then the maps are not computed for whole frames either
        self._warp_cache_on = bool(self.prop_params.warp_cache) and self.prop_params.warp_cache_mb > 0
        self._ready = False
        #: CPU seconds of the last round's parts: ``cut`` (the annotated frame's graph-cut
        #: segmentation) and ``propagate`` (its span: warps, colour correction, fusion, output).
        self.last_timings: dict[str, float] = {}

    # ------------------------------------------------------------------ reset

    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Validate the video, resize it to the working height, and compute (or reuse) the flows."""
        del gt_masks  # a real backend never reads ground truth
        self._ready = False
        frames = validate_frames(frames)
        n_objects = validate_n_objects(n_objects)
        if n_objects > 254:
            raise InputValidationError(f"n_objects must be <= 254 (uint8 labels), got {n_objects}")
        t, h, w = frames.shape[:3]
        self.n_objects = n_objects
        self.n_labels = n_objects + 1
        self.sequence = sequence
        self._out_shape = (h, w)
        if self.working_height is None or self.working_height >= h:
            small = np.ascontiguousarray(frames)
        else:
            wh = self.working_height
            ww = max(round(w * wh / h), 2)
            small = np.stack([cv2.resize(f, (ww, wh), interpolation=cv2.INTER_AREA) for f in frames])
        self._shape: tuple[int, int] = small.shape[1:3]
        self._n_frames = t
        self._frames = small
        self._bins = quantise_colours(small, self.colour_bins)
        self._warper = Warper(*self._shape)
        self._flows = self._flows_for(small)
        self._fwd, self._bwd = self._flows.fwd, self._flows.bwd
        self._strokes: dict[int, list[Stroke]] = {}
        self._segs: dict[int, np.ndarray] = {}
        self._colour: dict[int, ColourModel] = {}
        # Each annotated frame's run towards each annotated neighbour (or the video's end).
        self._runs: dict[tuple[int, int], list[_Crop]] = {}
        # Per-frame state kept between rounds: fused soft labels at working resolution.
        self._soft = np.zeros((t, self.n_labels, *self._shape), dtype=np.uint8)
        # Per (frame, object): the two runs reaching the frame, agreement (see _run_agreement).
        self._agree = np.tile(_AGREE_DEFAULT, (t, n_objects, 1))
        self._last_output: tuple[np.ndarray, np.ndarray] | None = None
        self._round = 0
        self._segmenter = FrameSegmenter(self.n_labels, self.colour_bins, self.seg_params)
        self._ready = True

    def fingerprint_extra(self) -> dict[str, Any]:
        """The ``seg``/``prop`` parameters that differ from the defaults, for
        :func:`~ivos_rl.backends.cached.backend_fingerprint` (empty by default, so default
        fingerprints stay as they were): runs and caches with other outputs never mix. Knobs that
        change the speed only (``PropParams.PERFORMANCE_ONLY``) are left out: same outputs, same
        fingerprint."""
        out: dict[str, Any] = {}
        pairs = (("seg", self.seg_params, SegParams()), ("prop", self.prop_params, PropParams()))
        for key, params, default in pairs:
            skip = getattr(params, "PERFORMANCE_ONLY", frozenset())
            changed = {f.name: getattr(params, f.name) for f in fields(params)
                       if f.name not in skip and getattr(params, f.name) != getattr(default, f.name)}
            if changed:
                out[key] = changed
        if self._diagnostics:  # the same masks, but outputs that carry more: never mixed in caches
            out["diagnostics"] = list(DIAGNOSTIC_NAMES)
        return out

    def fork(self) -> PropagationBackend:
        """An independent copy in the current state, for lookahead candidates and env snapshots.

        Cheaper than :func:`copy.deepcopy` (which copies every cached video's flows): the video's
        frames, colour bins, flows and the flow cache are read-only or pure caches and are shared;
        a round replaces the per-annotation entries (``_compute_round`` builds them, ``_commit``
        stores them), so only the containers and the per-frame soft labels (written in place) are
        copied. Forks give byte-identical rounds to the original (test).
        """
        clone = copy.copy(self)
        clone.last_timings = dict(self.last_timings)
        if self._ready:
            clone._strokes = dict(self._strokes)
            clone._segs = dict(self._segs)
            clone._colour = dict(self._colour)
            clone._runs = dict(self._runs)
            clone._soft = self._soft.copy()
            clone._agree = self._agree.copy()
        return clone

    def _flows_for(self, small: np.ndarray) -> _FlowCache:
        """Flows for these frames, from the LRU cache when the same video comes back (RL episodes)."""
        digest = hashlib.blake2b(small.tobytes(), digest_size=16)
        digest.update(repr((small.shape, self.flow_preset)).encode())
        key = digest.hexdigest()
        if key in self._flow_cache:
            self._flow_cache.move_to_end(key)
            return self._flow_cache[key]
        disk = None if self.flow_cache_dir is None else self.flow_cache_dir / f"{key}.npz"
        entry = None if disk is None else self._flows_from_disk(disk, small.shape[:3])
        if entry is None:
            gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in small])
            entry = _FlowCache(*compute_flows(gray, self.flow_preset))
            if disk is not None:
                save_flows(disk, entry.fwd, entry.bwd)
        entry.key = key
        if self.flow_cache_size > 0:
            self._flow_cache[key] = entry
            while len(self._flow_cache) > self.flow_cache_size:
                self._flow_cache.popitem(last=False)
        return entry

    @staticmethod
    def _flows_from_disk(path: Path, shape: tuple[int, int, int]) -> _FlowCache | None:
        """Flows of a (T, H, W) video from ``path``; None when absent or damaged (then recomputed)."""
        if not path.is_file():
            return None
        try:
            return _FlowCache(*load_flows(path, (max(shape[0] - 1, 0), shape[1], shape[2])))
        except CorruptFileError as exc:
            _log.warning("recomputing flows: %s", exc)
            return None

    # ------------------------------------------------------------------ interact

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Add this round's strokes on ``frame_idx``, re-segment it, and update its span only."""
        if not self._ready:
            raise BackendError("PropagationBackend.interact called before reset()")
        current = validate_interaction(frame_idx, interaction, self._n_frames, self.n_objects)
        frame_idx = int(frame_idx)
        others = [i for i, s in enumerate(interaction["scribbles"]) if s and i != frame_idx]
        if others:
            raise ScribbleError(
                f"interaction has strokes on frames {others[:5]} besides frame_idx={frame_idx}; "
                "this backend takes one frame per round"
            )
        seq = interaction.get("sequence")
        if seq is not None and self.sequence is not None and seq != self.sequence:
            raise ScribbleError(
                f"interaction is for sequence {seq!r}, the backend was reset on {self.sequence!r}"
            )
        new = [
            Stroke(int(s["object_id"]), np.asarray(s["path"], np.float64), self._round + 1) for s in current
        ]
        try:
            update = self._compute_round(frame_idx, new)
        except IvosError:
            raise
        except Exception as exc:
            # Nothing was committed: a failed round leaves no trace and never returns stale masks.
            raise BackendError(f"propagation backend failed on frame {frame_idx}: {exc!r}") from exc
        return self._commit(update)

    def _compute_round(self, k: int, new: list[Stroke]) -> _Round:
        """Everything this round changes, computed without touching the backend's state."""
        cpu0 = time.process_time()
        strokes = self._strokes.get(k, []) + new
        prior = _to_float(self._soft[k]) if self._segs else None
        labels = self._segmenter.segment(
            self._frames[k],
            self._bins[k],
            strokes,
            new,
            prior,
            self._global_model(exclude=k) if self._segs else None,
            motion_bins=self._motion_bins(k),
        )
        cpu1 = time.process_time()
        work_seeds = rasterise(strokes, self._shape)
        colour = self._frame_colour(k, labels, work_seeds)
        tables = self._global_model(exclude=k, extra=colour).log_tables()
        probs, masks = self._previous_output()
        seeds = work_seeds if self._out_shape == self._shape else rasterise(strokes, self._out_shape)
        onehot = _onehot(labels, self.n_labels)
        soft = {k: (onehot * 255).astype(np.uint8)}
        self._render(onehot, probs, masks, k, seeds)
        others = [a for a in self._segs if a != k]
        lo, hi = self._span(k, others)
        full = (slice(0, self._shape[0]), slice(0, self._shape[1]))
        runs: dict[tuple[int, int], list[_Crop]] = {}
        for direction, end in ((1, hi), (-1, lo)):
            # The annotated neighbour beyond ``end`` (if any) and its run towards k, cut at k.
            nb = end + direction if 0 <= end + direction < self._n_frames else None
            if nb is not None:
                runs[(nb, -direction)] = self._runs[(nb, -direction)][: abs(nb - k) - 1]
            state = _Crop(full, soft[k])
            states: list[_Crop] = []
            mixed = None
            motions: list[float] = []
            for i, t in enumerate(range(k + direction, end + direction, direction)):
                reuse = mixed if i % self.prop_params.local_every else None
                state, mixed = self._step(state, t - direction, t, tables, reuse, motions)
                states.append(state)
                nb_state = None if nb is None else runs[(nb, -direction)][abs(nb - t) - 1]
                region, p = self._blend(t, k, state, nb, nb_state, others)
                soft[t] = self._output_frame(t, region, p, probs, masks)
            runs[(k, direction)] = states
        timings = {"cut": cpu1 - cpu0, "propagate": time.process_time() - cpu1}
        return _Round(k, strokes, labels, colour, soft, runs, probs, masks, timings)

    def _commit(self, update: _Round) -> BackendOutput:
        """Store the round's results (cannot fail) and return fresh output arrays."""
        k = update.frame
        self._round += 1
        self._strokes[k] = update.strokes
        self._segs[k] = update.labels
        self._colour[k] = update.colour
        for t, soft in update.soft.items():
            self._soft[t] = soft
        self._runs.update(update.runs)
        self._last_output = (update.probs, update.masks)
        self.last_timings = update.timings
        changed = tuple(sorted(update.soft))
        diagnostics = None
        if self._diagnostics:
            for t in changed:
                self._agree[t] = self._run_agreement(t)
            diagnostics = {name: np.ascontiguousarray(self._agree[:, :, i])
                           for i, name in enumerate(DIAGNOSTIC_NAMES)}
        return BackendOutput(probs=update.probs.copy(), masks=update.masks.copy(), changed_frames=changed,
                             diagnostics=diagnostics)

    def _run_agreement(self, t: int) -> np.ndarray:
        """(K, 2) float32 for frame ``t``: per object, the IoU of the two runs that reach it (from
        the nearest annotated frame on each side, before they are fused) and their disagreeing
        pixels relative to the output mask's area (clipped at 4). Where both runs carry an
        object the same way the fused output is likely right; where they part, one of them is
        wrong. Annotated frames and frames with annotations on one side only (one run): 1, 0.
        """
        lo, hi = self._span(t, [a for a in self._segs if a != t])  # 0 / T - 1: nothing on that side
        if t in self._segs or lo == 0 or hi == self._n_frames - 1:
            return np.tile(_AGREE_DEFAULT, (self.n_objects, 1))
        a, b = lo - 1, hi + 1
        left, right = self._runs[(a, 1)][t - a - 1], self._runs[(b, -1)][b - t - 1]
        h, w = self._shape
        full = (slice(0, h), slice(0, w))
        la = argmax0(left.region_uint8(full, self.n_labels))
        lb = argmax0(right.region_uint8(full, self.n_labels))
        out = argmax0(self._soft[t])
        agree = np.empty((self.n_objects, 2), dtype=np.float32)
        for j in range(1, self.n_labels):
            in_a, in_b = la == j, lb == j
            inter = int(np.count_nonzero(in_a & in_b))
            union = int(np.count_nonzero(in_a | in_b))
            area = int(np.count_nonzero(out == j))
            agree[j - 1, 0] = inter / union if union else 1.0
            agree[j - 1, 1] = min((union - inter) / max(area, 1), 4.0)
        return agree

    def _motion_bins(self, t: int) -> np.ndarray | None:
        """Frame ``t``'s flow to a neighbour binned by :func:`quantise_motion` (None for a
        one-frame video or without the motion term), kept with the video's flows."""
        bins = self.seg_params.motion_bins
        if self._n_frames < 2 or self.seg_params.motion_weight <= 0:
            return None
        cache = self._flows.motion_bins
        if (t, bins) not in cache:
            motion = self._fwd[t] if t + 1 < self._n_frames else self._bwd[t - 1]
            q = quantise_motion(motion, bins)
            cache[(t, bins)] = q.astype(np.uint16) if bins * bins <= 65536 else q
        return cache[(t, bins)]

    def _frame_colour(self, f: int, labels: np.ndarray, seeds: np.ndarray) -> ColourModel:
        """Colour samples of annotated frame ``f``: its segmentation plus its (weighted) strokes."""
        model = ColourModel(self.n_labels, self.colour_bins)
        model.add_labels(self._bins[f], labels)
        for label in np.unique(seeds[seeds >= 0]):
            layer = cv2.dilate((seeds == label).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            w = np.zeros((self.n_labels, int(layer.sum())), dtype=np.float32)
            w[label] = self.prop_params.stroke_weight
            model.add(self._bins[f][layer], w)
        return model

    def _global_model(self, exclude: int | None = None, extra: ColourModel | None = None) -> ColourModel:
        """Colour model of every annotated frame but ``exclude`` (plus ``extra``), from cached counts."""
        model = ColourModel(self.n_labels, self.colour_bins)
        for f in sorted(self._colour):
            if f != exclude:
                model.counts += self._colour[f].counts
        if extra is not None:
            model.counts += extra.counts
        return model

    # ------------------------------------------------------------------ propagation

    def _span(self, k: int, others: list[int]) -> tuple[int, int]:
        """First and last frame a new annotation on ``k`` may change: up to, not including, the
        nearest other annotated frame on each side (or the video's ends)."""
        before = [a for a in others if a < k]
        after = [a for a in others if a > k]
        return (max(before) + 1 if before else 0), (min(after) - 1 if after else self._n_frames - 1)

    def _step(
        self, src: _Crop, t_src: int, t_dst: int, tables: np.ndarray, local: np.ndarray | None = None,
        motions: list[float] | None = None,
    ) -> tuple[_Crop, np.ndarray | None]:
        """Carry soft labels from ``t_src`` to the adjacent ``t_dst`` and colour-correct them.

        ``local``: tables already mixed with a local colour model on an earlier step of this run,
        used instead of a refit (``local_every`` > 1). ``motions``: the object's robust motions on
        this run's earlier steps (``reach_motion``); this step's is appended. Returns the crop and
        the mixed tables used.
        """
        prm = self.prop_params
        n_labels = self.n_labels
        if src.box is None or src.probs is None:
            return _Crop(None, None), local
        present = src.probs[0] < _OBJECT_PRESENT
        inner = bbox(present, 0, present.shape)
        if inner is None:
            return _Crop(None, None), local
        sbox = _offset(inner, src.box)
        warp = self._warp(src, sbox, t_src, t_dst)
        if warp is None:
            return _Crop(None, None), local
        dbox, warped, conf = warp
        # Occluded or unreliable pixels: a uniform prior, so that colour alone decides them.
        if prm.uniform_weight == 1.0 and math.isinf(prm.uniform_reach):
            # conf x warped + (1 - conf) / L, version 2's bits (in place: the same operations)
            prior = (1.0 - conf) * np.float32(1.0 / n_labels)
            warped *= conf
            warped += prior
        else:
            near = None
            if not math.isinf(prm.uniform_reach):
                p_src = src.region_uint8(dbox, n_labels)
                reach = prm.uniform_reach
                if prm.reach_motion > 0:
                    recent = [] if motions is None else motions
                    recent.append(_object_motion(argmax0(p_src) != 0, self._motion2(t_src, t_dst, dbox),
                                                 prm.reach_quantile))
                    reach = max(reach, prm.reach_motion * max(recent[-prm.reach_memory :]))
                near = _within_reach(p_src, reach)
            warped = _unreliable_prior(warped, conf, prm.uniform_weight, near)
        if prm.local_mix > 0:
            tables = local if local is not None else self._mix_local(tables, src, sbox, t_src)
            local = tables
        loglik = np.take(tables, self._bins[t_dst][dbox], axis=1)
        if prm.colour_band > 0:
            loglik *= _near_boundary(warped, prm.colour_band)
        # prior_weight x log(max(warped, floor)) + colour_weight x loglik, in place (same bits)
        score = np.maximum(warped, prm.prior_floor, out=warped)
        np.log(score, out=score)
        score *= prm.prior_weight
        loglik *= prm.colour_weight
        score += loglik
        q = _softmax0(score)
        if prm.smooth_sigma > 0:
            for plane in q:  # blurred into a spent buffer, then back (np.stack made a new array)
                plane[...] = cv2.GaussianBlur(plane, (0, 0), prm.smooth_sigma, dst=loglik[0])
        q = _remove_fragments(q, prm.min_fragment)
        return _Crop(dbox, probs_to_uint8(q)), local

    def _warp(
        self, src: _Crop, sbox: tuple[slice, slice], t_src: int, t_dst: int
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
        """Source labels warped onto ``t_dst``: its box (the source object's box ``sbox`` grown by
        the margin and the largest motion in it), the warped labels (L, h, w) and the
        forward-backward confidence (h, w); None when the warp samples no pixel of the frame."""
        prm = self.prop_params
        shape, n_labels = self._shape, self.n_labels
        maps = self._warp_maps(t_src, t_dst) if self._warp_cache_on else None
        to_src, from_src = self._flow_pair(t_src, t_dst)
        reach = prm.roi_margin + float(np.sqrt(self._motion2(t_src, t_dst, sbox).max()))
        dbox = _grow(sbox, reach, shape)
        if maps is not None:
            flow = None
            mx, my = maps.mx[dbox], maps.my[dbox]
        else:
            flow = as_float32(to_src[dbox])
            mx = self._warper.xs[dbox] + flow[..., 0]
            my = self._warper.ys[dbox] + flow[..., 1]
        # Only the source pixels the warp samples are converted and read (bilinear: +2).
        rbox = (
            slice(max(int(np.floor(my.min())) - 1, 0), min(int(np.ceil(my.max())) + 2, shape[0])),
            slice(max(int(np.floor(mx.min())) - 1, 0), min(int(np.ceil(mx.max())) + 2, shape[1])),
        )
        if rbox[0].start >= rbox[0].stop or rbox[1].start >= rbox[1].stop:
            return None
        if maps is not None:  # the cache's arrays: new ones
            mx, my = mx - rbox[1].start, my - rbox[0].start
        else:  # this step's own sums: in place (the same float32 subtraction)
            mx -= rbox[1].start
            my -= rbox[0].start
        p_src = src.region(rbox, n_labels)
        warped = np.stack([_remap(p_src[k], mx, my) for k in range(n_labels)])
        if maps is not None:
            return dbox, warped, maps.confidence[dbox]
        assert flow is not None
        back = _remap(as_float32(from_src[rbox]), mx, my)
        return dbox, warped, _fb_confidence(flow, back, prm.fb_sigma)

    def _motion2(self, t_src: int, t_dst: int, box: tuple[slice, slice]) -> np.ndarray:
        """Squared motion (h, w) float32 of ``t_src``'s pixels in ``box`` towards ``t_dst`` (from
        the warp cache when it is on: the same numbers)."""
        if self._warp_cache_on:
            return self._warp_maps(t_src, t_dst).motion2[box]
        motion = as_float32(self._flow_pair(t_src, t_dst)[1][box])
        motion *= motion
        return motion[..., 0] + motion[..., 1]

    def _flow_pair(self, t_src: int, t_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow from ``t_dst`` to ``t_src``, flow from ``t_src`` to ``t_dst``) of adjacent frames."""
        if t_dst == t_src + 1:
            return self._bwd[t_src], self._fwd[t_src]
        return self._fwd[t_dst], self._bwd[t_dst]

    def _warp_maps(self, t_src: int, t_dst: int) -> _WarpMaps:
        """:class:`_WarpMaps` of a step, computed for the whole frame on first use and kept in the
        backend's :class:`_WarpStore` (``warp_cache``, ``warp_cache_mb``): per pixel the same
        numbers as on a step's box (a bilinear warp of a box that holds every sampled pixel reads
        what the frame's would)."""
        key = (self._flows.key, t_src, t_dst)
        maps = self._warp_store.get(key)
        if maps is None:
            to_src, from_src = self._flow_pair(t_src, t_dst)
            flow = as_float32(to_src)
            mx = self._warper.xs + flow[..., 0]
            my = self._warper.ys + flow[..., 1]
            motion = as_float32(from_src)  # converted once: warped back, then squared in place
            back = _remap(motion, mx, my)
            motion *= motion
            maps = _WarpMaps(
                mx, my, _fb_confidence(flow, back, self.prop_params.fb_sigma), motion[..., 0] + motion[..., 1]
            )
            self._warp_store.put(key, maps)
        return maps

    def _boundary_model(self, u: np.ndarray, bins: np.ndarray) -> ColourModel | None:
        """Colour model of the pixels near the label boundary of soft labels ``u`` (L, h, w) uint8
        (x 255; only the pixels used are converted to float: the same weights, and the argmax of
        ``u`` is that of ``u`` / 255, ties included)."""
        prm = self.prop_params
        labels = argmax0(u)
        # Every label change (and so every pixel nearer to one than local_band) lies within the
        # objects' box grown by the band: the distances are computed there only (the same values:
        # a shortest chamfer path stays inside the rectangle of its two ends).
        box = bbox(labels != 0, prm.local_band + 1, labels.shape)
        if box is None:
            box = (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
        dist = _boundary_distance(labels[box])
        near = (dist < prm.local_band) & (dist >= prm.local_gap)
        if not near.any():
            return None
        model = ColourModel(self.n_labels, self.colour_bins)
        # u / 255 as float32 (the weights before), widened to the float64 bincount sums in: one look-up
        model.add(bins[box][near], lookup_uint8(_FLOAT64_OF_UINT8, u[(slice(None), *box)][:, near]))
        return model

    def _mix_local(self, tables: np.ndarray, src: _Crop, sbox: tuple[slice, slice], t_src: int) -> np.ndarray:
        """Mix the global colour densities with ones fitted near the source frame's boundary.

        Appearance drifts (lighting, pose); the previous frame's own labels near the object
        boundary are the most relevant colour samples for the next frame's boundary. Mixing the
        (L, bins) log-density tables is exact and far cheaper than mixing per pixel.
        """
        prm = self.prop_params
        region = _grow(sbox, prm.local_band + 1, self._shape)
        model = self._boundary_model(src.region_uint8(region, self.n_labels), self._bins[t_src][region])
        if model is None:
            return tables
        a = prm.local_mix
        local = model.log_tables()
        return np.logaddexp(math.log(1.0 - a) + tables, math.log(a) + local) if a < 1 else local

    # ------------------------------------------------------------------ fusion and output

    def _blend(
        self, t: int, k: int, run: _Crop, nb: int | None, nb_run: _Crop | None, others: list[int]
    ) -> tuple[tuple[slice, slice] | None, np.ndarray | None]:
        """Soft labels of span frame ``t``: the new run from ``k`` fused with the rest.

        Returns a box and the labels (L, h, w) float32 inside it; outside it (everywhere when
        the box is None) the frame is background.

        The rest is ``keep_previous`` x the frame's previous labels + (1 - ``keep_previous``) x
        the run from the annotated neighbour ``nb`` on t's side (``nb_run``; at an open end, the
        new run itself). The new run's temporal weight is ``d_o**p / (d_o**p + d**p)`` (``p =
        span_power``), ``d = |t - k|`` and ``d_o`` the distance to ``nb`` (at an open end, to the
        nearest other annotated frame): 1 at ``k``, 0 at the neighbour, linear in between for
        ``p = 1`` (MANet/ATNet). Per pixel each side is further weighted by its certainty **
        ``fusion_certainty``, so a sure side wins locally. Only the box where some input sees an
        object is computed; elsewhere every input is background.
        """
        n_labels = self.n_labels
        if not others:
            if run.box is None or run.probs is None:
                return None, None
            return run.box, run.region(run.box, n_labels)
        prm = self.prop_params
        keep = prm.keep_previous
        d = float(abs(t - k))
        d_o = float(abs(t - nb)) if nb is not None else float(min(abs(t - a) for a in others))
        w = d_o**prm.span_power / (d_o**prm.span_power + d**prm.span_power)
        old = self._soft[t]
        sources = [run] + ([nb_run] if nb_run is not None and keep < 1 else [])
        boxes = [c.box for c in sources if c.box is not None and c.probs is not None]
        if keep > 0:
            boxes.append(bbox(old[0] < 255, 0, self._shape))
        boxes = [b for b in boxes if b is not None]
        if not boxes:
            return None, None
        region = (
            slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
            slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)),
        )
        u_new = run.region_uint8(region, n_labels)
        p_new = _to_float(u_new)
        # At an open end the rest is the new run itself: its labels are read and converted once
        # (the same values; ``p_rest`` may then be ``p_new``, so it is read before ``p_new`` is
        # overwritten below).
        same = nb_run is None and keep < 1
        u_rest: np.ndarray | None = None
        if keep < 1:
            u_rest = u_new if nb_run is None else nb_run.region_uint8(region, n_labels)
        p_rest = (p_new if same else _to_float(u_rest)) if u_rest is not None else 0.0
        if keep > 0:
            p_rest = (1.0 - keep) * p_rest + keep * (old[(slice(None), *region)].astype(np.float32) / 255.0)
            u_rest = None
        if prm.fusion_certainty > 0:
            # certainty ** power of uint8-valued labels: a look-up of the top value (same bits).
            lut = _certainty_power_table(n_labels, prm.fusion_certainty)
            c_new = lookup_uint8(lut, u_new.max(axis=0))
            a = w * c_new
            if u_rest is not None:
                b = (1.0 - w) * (c_new if same else lookup_uint8(lut, u_rest.max(axis=0)))
            else:
                b = (1.0 - w) * _certainty(p_rest) ** prm.fusion_certainty
            # (a p_new + b p_rest) / (a + b), in place where the arrays are this call's own (same bits)
            total = a + b
            rest = b * p_rest  # before p_new (which p_rest may be) is overwritten
            fused = np.multiply(p_new, a, out=p_new)
            fused += rest
            fused /= total
        else:
            fused = w * p_new + (1.0 - w) * p_rest
        return region, fused

    def _output_frame(
        self, t: int, region: tuple[slice, slice] | None, p: np.ndarray | None, probs: np.ndarray,
        masks: np.ndarray,
    ) -> np.ndarray:
        """Write span frame ``t`` (labels ``p`` inside ``region``, background elsewhere) into the
        output and return its soft labels (L, H, W) uint8 at working resolution.

        At the input resolution only the region is converted (the rest is background: 255 / 0,
        label 0); otherwise the whole frame goes through :meth:`_render`.
        """
        soft = np.zeros((self.n_labels, *self._shape), dtype=np.uint8)
        soft[0] = 255
        if region is not None and p is not None:
            soft[(slice(None), *region)] = probs_to_uint8(p)
        if self._out_shape != self._shape:
            full = np.zeros((self.n_labels, *self._shape), dtype=np.float32)
            full[0] = 1.0
            if region is not None and p is not None:
                full[(slice(None), *region)] = p
            self._render(full, probs, masks, t)
            return soft
        probs[t] = soft[1:]
        masks[t] = 0
        if region is not None and p is not None:
            masks[t][region] = argmax0(p)
        return soft

    def _previous_output(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh copies of the previous output (callers may keep it), or empty arrays in round 1."""
        oh, ow = self._out_shape
        if self._last_output is None:
            return (np.empty((self._n_frames, self.n_objects, oh, ow), dtype=np.uint8),
                    np.empty((self._n_frames, oh, ow), dtype=np.uint8))
        return self._last_output[0].copy(), self._last_output[1].copy()

    def _render(
        self, p: np.ndarray, probs: np.ndarray, masks: np.ndarray, t: int, seeds: np.ndarray | None = None
    ) -> None:
        """Write frame ``t``'s soft labels ``p`` (L, h, w) float32 into the output at input size.

        Resized, labelled by argmax; on an annotated frame every stroke pixel (``seeds`` at input
        size) is pinned to its label.
        """
        oh, ow = self._out_shape
        if (oh, ow) != self._shape:
            p = np.stack([cv2.resize(plane, (ow, oh), interpolation=cv2.INTER_LINEAR) for plane in p])
        labels = argmax0(p)
        obj = p[1:]
        if seeds is not None:
            on = seeds >= 0
            labels[on] = seeds[on]
            for j in range(1, self.n_labels):
                obj[j - 1][on] = (seeds[on] == j).astype(np.float32)
        probs[t] = probs_to_uint8(obj)
        masks[t] = labels


def _fb_confidence(flow: np.ndarray, back: np.ndarray, sigma: float) -> np.ndarray:
    """Trust (h, w) in a warp from the forward-backward error: ``flow`` (h, w, 2) to the source,
    ``back`` the source's flow back, sampled where ``flow`` points (0 error: 1)."""
    err = flow + back  # (fx + bx)^2 + (fy + by)^2, x -0.5 / sigma^2, exp: in place, the same bits
    err *= err
    err2 = err[..., 0] + err[..., 1]
    err2 *= -0.5 / sigma**2
    return np.exp(err2, out=err2)


def _unreliable_prior(
    warped: np.ndarray, conf: np.ndarray, weight: float, near: np.ndarray | None
) -> np.ndarray:
    """Warped labels (L, h, w) with the prior of unreliable pixels (``PropParams.uniform_weight``):
    ``c x warped + (1 - c) x (w x 1/L + (1 - w) x warped)`` with trust ``conf`` = c (h, w), w =
    ``weight`` where ``near`` (h, w bool; None: everywhere) and 0 elsewhere."""
    gain = (1.0 - conf) * np.float32(weight)
    if near is not None:
        gain = gain * near
    alt = np.float32(1.0 / warped.shape[0])
    return warped + gain * (alt - warped)


def _within_reach(p: np.ndarray, reach: float) -> np.ndarray:
    """(h, w) bool: pixels within ``reach`` px (Euclidean) of an object pixel of soft labels ``p``
    (L, h, w; its argmax is not background); all False when no object pixel is there."""
    objects = argmax0(p) != 0
    if not objects.any():
        return objects
    return exact_distance(~objects) <= reach


def _object_motion(objects: np.ndarray, motion2: np.ndarray, quantile: float) -> float:
    """Robust motion (px) of the objects for ``PropParams.reach_motion``: the ``quantile`` quantile
    (linear) of the motion magnitude sqrt(``motion2``) (h, w) over the ``objects`` pixels (h, w
    bool); 0 when there is no object pixel (then the reach is its floor)."""
    if not objects.any():
        return 0.0
    return float(np.quantile(np.sqrt(motion2[objects]), quantile))


def _certainty(p: np.ndarray) -> np.ndarray:
    """Per-pixel certainty of soft labels (L, h, w): the top probability rescaled from [1/L, 1] to
    [0, 1], plus a floor so that two unsure sides still share the weight."""
    n = p.shape[0]
    return 1e-3 + np.maximum(p.max(axis=0) - 1.0 / n, 0.0) * (n / (n - 1))


@functools.lru_cache(maxsize=8)
def _certainty_power_table(n_labels: int, power: float) -> np.ndarray:
    """``_certainty(p) ** power`` (float32) for every top probability v / 255, v = 0..255.

    Computed by the same float32 operations as on a frame (a label plane holding v / 255 and
    the others 0), so indexing it by a frame's top uint8 value gives exactly the same numbers
    while one power per distinct value replaces one per pixel.
    """
    p = np.zeros((n_labels, 256), dtype=np.float32)
    p[0] = _to_float(np.arange(256, dtype=np.uint8))
    table = _certainty(p) ** power
    table.flags.writeable = False
    return table


def _offset(inner: tuple[slice, slice], outer: tuple[slice, slice]) -> tuple[slice, slice]:
    """A box given inside ``outer`` expressed in frame coordinates."""
    return (
        slice(outer[0].start + inner[0].start, outer[0].start + inner[0].stop),
        slice(outer[1].start + inner[1].start, outer[1].start + inner[1].stop),
    )


def _grow(box: tuple[slice, slice], margin: float, shape: tuple[int, int]) -> tuple[slice, slice]:
    m = math.ceil(margin)
    return (
        slice(max(box[0].start - m, 0), min(box[0].stop + m, shape[0])),
        slice(max(box[1].start - m, 0), min(box[1].stop + m, shape[1])),
    )


def _near_boundary(p: np.ndarray, width: float) -> np.ndarray:
    """Weight (h, w) in [0, 1], 1 on label boundaries of ``p`` (L, h, w), fading over ``width`` px.

    4 b (1 - b) of the background probability blurred by ``width``: a blur is far cheaper than
    a distance transform and gives the same smooth band.
    """
    b = cv2.GaussianBlur(p[0], (0, 0), width)
    rest = 1.0 - b  # 4 b (1 - b) clipped, in place: the same operations
    b *= 4.0
    b *= rest
    return np.clip(b, 0.0, 1.0, out=b)


def _boundary_distance(labels: np.ndarray) -> np.ndarray:
    """Distance (H, W) float32 of every pixel to the nearest label change (capped at 1000)."""
    edge = np.zeros(labels.shape, dtype=np.uint8)
    edge[:, 1:] |= (labels[:, 1:] != labels[:, :-1]).astype(np.uint8)
    edge[1:, :] |= (labels[1:, :] != labels[:-1, :]).astype(np.uint8)
    if not edge.any():
        return np.full(labels.shape, 1000.0, dtype=np.float32)
    return np.minimum(cv2.distanceTransform(1 - edge, cv2.DIST_L2, 3), 1000.0)


def _remap(plane: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Bilinear backward warp of an (H, W[, C]) float32 image, edges replicated."""
    return cv2.remap(plane, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _onehot(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """(L, H, W) float32 one-hot planes of a label map."""
    return np.stack([(labels == k).astype(np.float32) for k in range(n_labels)])


def _softmax0(score: np.ndarray) -> np.ndarray:
    """Softmax over the first axis of (L, H, W) float32, in place (``score`` is overwritten)."""
    top = score.max(axis=0) if score.shape[0] > 2 else np.maximum(score[0], score[1])
    score -= top
    e = np.exp(score, out=score)
    e /= e.sum(axis=0)
    return e


def _remove_fragments(q: np.ndarray, min_fragment: float) -> np.ndarray:
    """Give the mass of small disconnected pieces of each object to the background.

    A piece smaller than ``min_fragment`` times the object's largest piece is almost always
    colour leakage, not the object (objects rarely split into tiny parts between two frames).
    ``q`` is (L, H, W).
    """
    if min_fragment <= 0:
        return q
    labels = argmax0(q)
    # 16-bit component labels when they cannot overflow (8-connected pieces need a gap, so there
    # are at most ceil(h/2) x ceil(w/2)): the same components, ~25 % faster than 32-bit.
    small_labels = ((labels.shape[0] + 1) // 2) * ((labels.shape[1] + 1) // 2) < 65535
    ltype = cv2.CV_16U if small_labels else cv2.CV_32S
    for k in range(1, q.shape[0]):
        # with one object the labels are its 0/1 mask already
        mask = labels if q.shape[0] == 2 else (labels == k).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
        if n <= 2:
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < min_fragment * areas.max())[0] + 1
        if small.size == 0:
            continue
        lut = np.zeros(n, dtype=bool)
        lut[small] = True
        drop = np.take(lut, comp)  # = lut[comp], faster
        q[0][drop] += q[k][drop]
        q[k][drop] = 0.0
    return q


def _override(base: Any, values: dict[str, float] | None, what: str) -> Any:
    """Dataclass ``base`` with ``values`` replaced; unknown names are a typed error. A switch
    (a field whose default is a bool) takes true/false only, every other field a number >= 0."""
    if not values:
        return base
    names = {f.name for f in fields(base)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputValidationError(f"unknown {what} parameters {unknown}; valid: {sorted(names)}")
    clean: dict[str, float | int] = {}
    for k, v in dict(values).items():
        if isinstance(getattr(base, k), bool):
            if not isinstance(v, bool):
                raise InputValidationError(f"{what}.{k} must be true or false, got {v!r}")
            clean[k] = v
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputValidationError(f"{what}.{k} must be a finite number >= 0, got {v!r}")
        if isinstance(getattr(base, k), int):
            if v != int(v):
                raise InputValidationError(f"{what}.{k} must be a whole number, got {v!r}")
            v = int(v)
        clean[k] = v
    return replace(base, **clean)
