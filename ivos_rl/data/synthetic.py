"""Procedurally generated DAVIS-layout videos: the embedded default dataset for demos and tests.

Each sequence has a panning, unevenly lit textured background and 1..K textured objects with
smooth random outlines. Objects move on crossing paths, scale, rotate, deform, occlude each other
in a fixed depth order, slowly change colour and texture, and (optionally) one object leaves the
frame and comes back while an unlabelled foreground pillar fully hides another for a few frames.
Object palettes borrow a background colour and the pillar borrows object colours, so no global
colour threshold separates objects from background, and because visibility and appearance change
over time, which frame gets annotated matters.

Everything is drawn from a ``np.random.Generator`` seeded per sequence with ``(seed, index)``:
the same seed gives byte-identical files, and sequence ``i`` does not depend on how many
sequences are generated.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ivos_rl.data import layout
from ivos_rl.data.davis import DavisDataset
from ivos_rl.data.imageio import write_jpeg, write_mask
from ivos_rl.data.metadata import write_metadata
from ivos_rl.data.staging import staged_directory
from ivos_rl.errors import CorruptFileError, DatasetError, InputValidationError, IvosError
from ivos_rl.utils.io import atomic_write_json, atomic_write_text
from ivos_rl.utils.logging import get_logger, setup_logging

GENERATOR_FORMAT = "ivos-rl/synthetic"
GENERATOR_VERSION = 1
INFO_FILE = "synthetic.json"
#: what make-synthetic writes at the top of its folder; --overwrite replaces these and nothing else
OWNED_ENTRIES = ("JPEGImages", "Annotations", "ImageSets", "Scribbles", "davis-*.json", INFO_FILE)
_N_VERTICES = 72
_MAX_ATTEMPTS = 40
_log = get_logger(__name__)


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines a generated dataset (stored in ``synthetic.json``)."""

    n_sequences: int = 4
    n_frames: int = 30
    size: tuple[int, int] = (120, 200)
    max_objects: int = 2
    min_objects: int = 1
    seed: int = 0
    leave_frame: bool = True
    occluder: bool = True
    drift: float = 0.6
    noise_std: float = 2.0
    jpeg_quality: int = 90
    resolution: str = "480p"
    with_scribbles: bool = True
    n_scribble_variants: int = 3

    @classmethod
    def create(cls, **kwargs: Any) -> SyntheticParams:
        """Validated parameters with normalised types (Hydra lists and numpy scalars become
        tuples, ints and floats) so that ``synthetic.json`` comparisons are exact."""
        params = cls(**kwargs)
        params.validate()
        return replace(
            params,
            size=(int(params.size[0]), int(params.size[1])),
            drift=float(params.drift),
            noise_std=float(params.noise_std),
        )

    def validate(self) -> None:
        """Raise InputValidationError naming the first bad argument."""
        ints = {
            "n_sequences": 1,
            "n_frames": 3,
            "max_objects": 1,
            "min_objects": 1,
            "seed": 0,
            "jpeg_quality": 1,
            "n_scribble_variants": 1,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputValidationError(f"{name} must be an int >= {low}, got {value!r}")
        if self.min_objects > self.max_objects:
            raise InputValidationError(
                f"min_objects={self.min_objects} must not exceed max_objects={self.max_objects}"
            )
        if self.max_objects > 254:
            raise InputValidationError(f"max_objects must be <= 254, got {self.max_objects}")
        if self.jpeg_quality > 100:
            raise InputValidationError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        size = self.size
        if (
            isinstance(size, str)
            or not isinstance(size, Sequence)
            or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        ):
            raise InputValidationError(f"size must be (H, W) ints, got {size!r}")
        h, w = size
        if min(h, w) < 32:
            raise InputValidationError(f"size must be at least 32x32 (H, W), got {self.size!r}")
        for name in ("drift", "noise_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InputValidationError(f"{name} must be a number, got {value!r}")
        if not 0.0 <= self.drift <= 1.0:
            raise InputValidationError(f"drift must be in [0, 1], got {self.drift!r}")
        if self.noise_std < 0:
            raise InputValidationError(f"noise_std must be >= 0, got {self.noise_std!r}")
        if not self.resolution or self.resolution in (".", "..") or "/" in self.resolution:
            raise InputValidationError(
                f"resolution must be a folder name like '480p', got {self.resolution!r}"
            )


@dataclass
class SyntheticSequence:
    """One rendered sequence in memory plus what happened in it."""

    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (T, H, W) uint8
    events: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- textures
def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 3
) -> np.ndarray:
    """Multi-octave value noise in [0, 1]: cubic-upsampled random grids, ``cells`` blobs across."""
    h, w = shape
    acc = np.zeros((h, w), np.float32)
    amp = 1.0
    for octave in range(octaves):
        n = cells * 2**octave
        gh = max(2, round(n * h / max(h, w)) + 2)
        gw = max(2, round(n * w / max(h, w)) + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        acc += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / max(hi - lo, 1e-6)


def _pattern(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A texture index field in [0, 1]: clouds, marble stripes or spots, chosen at random."""
    h, w = shape
    base = _smooth_field(rng, shape, cells=rng.uniform(1.5, 3.5))
    kind = int(rng.integers(3))
    if kind == 0:
        return base
    if kind == 1:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, math.pi)
        freq = rng.uniform(0.25, 0.6) / max(scale, 1.0) * 6.0
        phase = (xx * math.cos(a) + yy * math.sin(a)) * freq + 5.0 * base
        return (0.5 + 0.5 * np.sin(phase)).astype(np.float32)
    fine = _smooth_field(rng, shape, cells=rng.uniform(5.0, 9.0), octaves=2)
    spots = (fine > rng.uniform(0.55, 0.7)).astype(np.float32)
    return np.clip(0.6 * base + 0.4 * cv2.GaussianBlur(spots, (0, 0), 1.0), 0, 1)


def _colormap(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map [0, 1] values through a piecewise-linear palette (n, 3) -> (..., 3) float32."""
    pos = np.linspace(0.0, 1.0, len(palette))
    return np.stack([np.interp(values, pos, palette[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255.0


def _drifted(rng: np.random.Generator, palette: np.ndarray, drift: float) -> np.ndarray:
    """The palette after appearance drift: hue shift and brightness change scaled by ``drift``."""
    out = []
    for rgb in palette:
        h, s, v = colorsys.rgb_to_hsv(*(np.clip(rgb, 0, 255) / 255.0))
        h = (h + drift * rng.uniform(-0.15, 0.15)) % 1.0
        v = float(np.clip(v * (1 + drift * rng.uniform(-0.35, 0.35)), 0.05, 1.0))
        out.append(np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255.0)
    return np.stack(out)


# ---------------------------------------------------------------------------------- objects
@dataclass
class _Object:
    """Shape, motion and appearance of one labelled object (time ``u`` in [0, 1])."""

    r0: float
    harm: np.ndarray  # (H, 4): order, amplitude, phase, deform amplitude
    deform_freq: np.ndarray
    deform_phase: np.ndarray
    centre: np.ndarray  # (2,) x, y
    amp: np.ndarray  # (2,)
    freq: np.ndarray  # (2,)
    phase: np.ndarray  # (2,)
    theta0: float
    omega: float
    scale_amp: float
    scale_freq: float
    scale_phase: float
    tex_values: np.ndarray  # (S, S) texture index field
    palette0: np.ndarray
    palette1: np.ndarray
    slide: np.ndarray  # (2,) texture slide over the sequence (px)
    elong: float = 1.0  # aspect ratio: outline x scaled by sqrt(elong), y by 1 / sqrt(elong)
    leave: dict[str, float] | None = None

    @property
    def bound(self) -> float:
        """Upper bound of the distance from centre to outline over the whole sequence."""
        spread = 1 + float(np.abs(self.harm[:, 1]).sum() + np.abs(self.harm[:, 3]).sum())
        return self.r0 * spread * (1 + self.scale_amp) * math.sqrt(self.elong)

    def scale(self, u: float) -> float:
        return 1.0 + self.scale_amp * math.sin(2 * math.pi * self.scale_freq * u + self.scale_phase)

    def angle(self, u: float) -> float:
        return self.theta0 + self.omega * u

    def excursion(self, u: float) -> float:
        """Leave-the-frame displacement factor in [0, 1] (0 outside the excursion window)."""
        if self.leave is None:
            return 0.0
        u0, u1 = self.leave["u0"], self.leave["u1"]
        if not u0 < u < u1:
            return 0.0
        return math.sin(math.pi * (u - u0) / (u1 - u0))

    def position(self, u: float) -> np.ndarray:
        pos = self.centre + self.amp * np.sin(2 * math.pi * self.freq * u + self.phase)
        if self.leave is not None:
            axis = int(self.leave["axis"])
            pos = pos.copy()
            pos[axis] = self.centre[axis] + self.leave["direction"] * self.leave[
                "amplitude"
            ] * self.excursion(u)
        return pos

    def outline(self, u: float) -> np.ndarray:
        """(N, 2) outline vertices in image coordinates."""
        ang = np.linspace(0, 2 * math.pi, _N_VERTICES, endpoint=False)
        order, a, ph, b = self.harm.T
        amp = a + b * np.sin(2 * math.pi * self.deform_freq * u + self.deform_phase)
        radius = (
            self.r0 * self.scale(u) * (1 + (amp[:, None] * np.cos(order[:, None] * ang + ph[:, None])).sum(0))
        )
        stretch = math.sqrt(self.elong)
        local = np.stack([radius * np.cos(ang) * stretch, radius * np.sin(ang) / stretch], axis=1)
        c, s = math.cos(self.angle(u)), math.sin(self.angle(u))
        return local @ np.array([[c, s], [-s, c]]) + self.position(u)

    def texture_affine(self, u: float) -> np.ndarray:
        """2x3 affine taking texture-canvas pixels to image pixels at time ``u``."""
        side = self.tex_values.shape[0]
        c, s = math.cos(self.angle(u)), math.sin(self.angle(u))
        a = self.scale(u) * np.array([[c, -s], [s, c]])
        origin = np.array([side / 2, side / 2]) + self.slide * u
        return np.hstack([a, (self.position(u) - a @ origin)[:, None]])


def _sample_object(
    rng: np.random.Generator, size: tuple[int, int], n_objects: int, bg_palette: np.ndarray, drift: float
) -> _Object:
    h, w = size
    r0 = rng.uniform(0.11, 0.19) * min(h, w) * math.sqrt(2.0 / max(n_objects, 2))
    orders = np.arange(2, 6, dtype=np.float64)
    amps = rng.uniform(0.0, 0.28, len(orders)) / orders**0.6
    amps *= min(1.0, 0.55 / max(amps.sum(), 1e-6))
    harm = np.stack(
        [orders, amps, rng.uniform(0, 2 * math.pi, len(orders)), amps * rng.uniform(0.1, 0.45, len(orders))],
        axis=1,
    )
    scale_amp = rng.uniform(0.1, 0.3)
    # Elongated outlines: real objects rarely are discs, and a disc's medial axis is a point, on
    # which the scribble robot cannot draw.
    elong = rng.uniform(1.5, 2.8)
    bound = r0 * (1 + harm[:, 1].sum() + harm[:, 3].sum()) * (1 + scale_amp) * math.sqrt(elong)
    reach = np.array([w / 2 - 0.4 * bound, h / 2 - 0.4 * bound]).clip(min=0)
    amp = reach * rng.uniform(0.45, 1.0, 2)
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.1, 0.1, 2) * np.array([w, h])
    side = 2 * math.ceil(bound) + 8
    slide = rng.uniform(-1, 1, 2) * drift * side * 0.4
    canvas = side + 2 * math.ceil(np.abs(slide).max()) + 4
    own = np.stack([_random_colour(rng), _random_colour(rng)])
    shared = bg_palette[rng.integers(len(bg_palette))] + rng.uniform(-12, 12, 3)
    palette0 = np.clip(np.concatenate([own[:1], shared[None], own[1:]])[rng.permutation(3)], 0, 255)
    return _Object(
        r0=r0,
        harm=harm,
        deform_freq=rng.uniform(0.5, 2.0, len(orders)),
        deform_phase=rng.uniform(0, 2 * math.pi, len(orders)),
        centre=centre,
        amp=amp,
        freq=rng.uniform(0.5, 1.5, 2),
        phase=rng.uniform(0, 2 * math.pi, 2),
        theta0=rng.uniform(0, 2 * math.pi),
        omega=rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 3.0),
        scale_amp=scale_amp,
        scale_freq=rng.uniform(0.5, 1.5),
        scale_phase=rng.uniform(0, 2 * math.pi),
        tex_values=_pattern(rng, (canvas, canvas), scale=r0),
        palette0=palette0,
        palette1=np.clip(_drifted(rng, palette0, drift), 0, 255),
        slide=slide,
        elong=elong,
    )


def _make_leaver(obj: _Object, rng: np.random.Generator, size: tuple[int, int], times: np.ndarray) -> None:
    """Give ``obj`` an excursion that takes it fully out of the frame at least once, then back."""
    h, w = size
    axis = int(rng.integers(2))
    extent = (w, h)[axis]
    u0 = rng.uniform(0.1, 0.35)
    u1 = u0 + rng.uniform(0.35, 0.55)
    obj.leave = {
        "axis": axis,
        "direction": float(rng.choice([-1.0, 1.0])),
        "u0": u0,
        "u1": u1,
        "amplitude": 0.0,
    }
    # Size the excursion so that at the frame of largest excursion the outline (at that frame's
    # rotation, scale and deformation) is just past the border: the object is gone for a few
    # frames around it and back afterwards.
    excursions = [obj.excursion(float(u)) for u in times]
    t_peak = int(np.argmax(excursions))
    peak = max(excursions[t_peak], 1e-3)
    u_peak = float(times[t_peak])
    pts, pos = obj.outline(u_peak), obj.position(u_peak)  # amplitude 0: the object sits at its centre
    centre = float(obj.centre[axis])
    if obj.leave["direction"] > 0:
        needed = (extent - 1) - centre + (pos[axis] - pts[:, axis].min())
    else:
        needed = centre + (pts[:, axis].max() - pos[axis])
    obj.leave["amplitude"] = (needed + 1.0 + 0.03 * extent) / peak


# ---------------------------------------------------------------------------------- rendering
def _fill(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rasterise a polygon with 1/16-pixel vertex precision into a bool mask."""
    mask = np.zeros(size, np.uint8)
    pts = np.round(points * 16).astype(np.int64)
    pts = np.clip(pts, -(2**26), 2**26).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _shading(mask: np.ndarray, r0: float) -> np.ndarray:
    """Darken objects towards their outline (a rounded look), so edges show without colour cues."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return (0.7 + 0.3 * np.clip(dist / max(0.5 * r0, 1.0), 0, 1))[..., None]


def _soft(mask: np.ndarray) -> np.ndarray:
    """Anti-aliased alpha for compositing (labels stay hard)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0.7)[..., None]


def render_sequence(
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    n_objects: int,
    *,
    leave_frame: bool = True,
    occluder: bool = True,
    drift: float = 0.6,
    noise_std: float = 2.0,
    name: str = "synthetic",
) -> SyntheticSequence:
    """Render one sequence; resamples its parameters until the requested events really happen.

    Guarantees: every object is visible on at least a third of the frames; with ``leave_frame``
    one object is entirely outside the frame on some frame and visible again later; with
    ``occluder`` one object lies inside the frame but is completely hidden on some frame.
    """
    for _ in range(_MAX_ATTEMPTS):
        seq = _render_once(rng, n_frames, size, n_objects, leave_frame, occluder, drift, noise_std, name)
        if seq is not None:
            return seq
    raise DatasetError(
        f"could not render sequence {name!r} with the requested events in {_MAX_ATTEMPTS} attempts "
        f"(size {size}, {n_frames} frames, {n_objects} objects); use larger frames or more frames"
    )


@dataclass
class _Background:
    """A padded textured canvas the camera pans across linearly over the sequence."""

    canvas: np.ndarray  # (H + 2 pad, W + 2 pad, 3) float32
    palette: np.ndarray  # (4, 3) colours the canvas is painted with (objects borrow one)
    pad: int
    pan: np.ndarray  # (2,) total x, y displacement / 2

    @classmethod
    def sample(cls, rng: np.random.Generator, size: tuple[int, int]) -> _Background:
        h, w = size
        pad = math.ceil(0.12 * max(h, w))
        palette = np.stack([_random_colour(rng) for _ in range(4)])
        shape = (h + 2 * pad, w + 2 * pad)
        values = 0.7 * _smooth_field(rng, shape, cells=rng.uniform(2, 4))
        values += 0.3 * _pattern(rng, shape, scale=max(h, w) / 8)
        pan = rng.uniform(-1, 1, 2) * pad * 0.9
        return cls(canvas=_colormap(values, palette), palette=palette, pad=pad, pan=pan)

    def view(self, u: float, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        shift = self.pad + self.pan * (2 * u - 1)
        m = np.array([[1, 0, -shift[0]], [0, 1, -shift[1]]], np.float32)
        return cv2.warpAffine(
            self.canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )


@dataclass
class _Lighting:
    """Illumination change over time: global gain wobble, a turning linear ramp, a moving spot."""

    gain_amp: float
    gain_freq: float
    gain_phase: float
    ramp_dir: float
    ramp_turn: float
    spot_start: np.ndarray
    spot_end: np.ndarray
    spot_sigma: float
    drift: float

    @classmethod
    def sample(cls, rng: np.random.Generator, size: tuple[int, int], drift: float) -> _Lighting:
        h, w = size
        return cls(
            gain_amp=0.25 * drift,
            gain_freq=rng.uniform(0.5, 1.5),
            gain_phase=rng.uniform(0, 2 * math.pi),
            ramp_dir=rng.uniform(0, 2 * math.pi),
            ramp_turn=rng.uniform(-1.5, 1.5),
            spot_start=rng.uniform(0, 1, 2) * (w, h),
            spot_end=rng.uniform(0, 1, 2) * (w, h),
            spot_sigma=rng.uniform(0.25, 0.5) * max(h, w),
            drift=drift,
        )

    def apply(self, img: np.ndarray, u: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        h, w = xx.shape
        angle = self.ramp_dir + self.ramp_turn * u
        ramp = ((xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle)) / max(h, w)
        spot_pos = (1 - u) * self.spot_start + u * self.spot_end
        spot = np.exp(-((xx - spot_pos[0]) ** 2 + (yy - spot_pos[1]) ** 2) / (2 * self.spot_sigma**2))
        gain = 1 + self.gain_amp * math.sin(2 * math.pi * self.gain_freq * u + self.gain_phase)
        return img * (gain * (0.85 + 0.35 * self.drift * ramp + 0.3 * spot))[..., None]


@dataclass
class _Pillar:
    """An unlabelled full-height foreground band, placed so it covers one object at ``t_occ``."""

    half: float
    x_at_occ: float
    t_occ: int
    speed: float  # px per frame
    wobble_amp: float
    wobble_freq: float
    wobble_phase: float
    texture: np.ndarray  # (H, width, 3) float32

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        target: _Object,
        objects: list[_Object],
        times: np.ndarray,
        size: tuple[int, int],
    ) -> _Pillar | None:
        """None when ``target`` is never fully inside the frame (nothing to hide)."""
        h, w = size
        inside = []
        for t, u in enumerate(times):
            pts = target.outline(float(u))
            if (
                pts[:, 0].min() >= 1
                and pts[:, 0].max() <= w - 2
                and pts[:, 1].min() >= 1
                and pts[:, 1].max() <= h - 2
            ):
                inside.append(t)
        if not inside:
            return None
        t_occ = int(inside[int(rng.integers(len(inside)))])
        pts = target.outline(float(times[t_occ]))
        half = (pts[:, 0].max() - pts[:, 0].min()) / 2 + 2.0  # 2 px margin on each side
        values = _pattern(rng, (h, math.ceil(2 * half) + 8), scale=half)
        palette = np.stack(
            [objects[rng.integers(len(objects))].palette0[rng.integers(3)], _random_colour(rng)]
        )
        return cls(
            half=float(half),
            x_at_occ=float((pts[:, 0].max() + pts[:, 0].min()) / 2),
            t_occ=t_occ,
            speed=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.8) * w / max(len(times) - 1, 1)),
            wobble_amp=rng.uniform(0.5, 2.0),
            wobble_freq=rng.uniform(0.02, 0.08),
            wobble_phase=rng.uniform(0, 2 * math.pi),
            texture=_colormap(values, palette),
        )

    def draw(self, img: np.ndarray, labels: np.ndarray, t: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        """Composite the pillar over ``img`` and clear the labels it hides (in place)."""
        x_c = self.x_at_occ + self.speed * (t - self.t_occ)
        # The edges only wobble outwards, so the covered band never gets narrower than 2 * half.
        wobble = self.wobble_amp * (
            1 + np.sin(2 * math.pi * self.wobble_freq * yy[:, :1] + self.wobble_phase)
        )
        band = np.abs(xx - x_c) <= self.half + wobble
        if not band.any():
            return img
        width = self.texture.shape[1]
        cols = np.clip(np.round(xx - x_c + width / 2).astype(np.int64), 0, width - 1)
        rgb = self.texture[yy.astype(np.int64), cols]
        alpha = _soft(band)
        labels[band] = 0
        return img * (1 - alpha) + rgb * alpha


def _draw_object(img: np.ndarray, labels: np.ndarray, obj: _Object, label: int, u: float) -> np.ndarray:
    """Composite ``obj`` at time ``u`` over ``img`` and write ``label`` under it (in place)."""
    h, w = labels.shape
    mask = _fill(obj.outline(u), (h, w))
    if not mask.any():
        return img
    lam = min(1.0, u * (1.0 + 0.3 * math.sin(3 * u)))
    colours = (1 - lam) * obj.palette0 + lam * obj.palette1
    tex = cv2.warpAffine(
        _colormap(obj.tex_values, colours),
        obj.texture_affine(u).astype(np.float32),
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT101,
    )
    tex = tex * _shading(mask, obj.r0)
    alpha = _soft(mask)
    labels[mask] = label
    return img * (1 - alpha) + tex * alpha


def _placement(obj: _Object, u: float, size: tuple[int, int]) -> tuple[bool, bool]:
    """(outline entirely inside the frame, outline entirely outside it) at time ``u``."""
    h, w = size
    pts = obj.outline(u)
    x0, x1, y0, y1 = pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max()
    inside = x0 >= 0 and x1 <= w - 1 and y0 >= 0 and y1 <= h - 1
    outside = x1 < 0 or x0 > w - 1 or y1 < 0 or y0 > h - 1
    return bool(inside), bool(outside)


def _render_once(
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    n_objects: int,
    leave_frame: bool,
    occluder: bool,
    drift: float,
    noise_std: float,
    name: str,
) -> SyntheticSequence | None:
    """One rendering attempt; None when a requested event did not happen with these draws."""
    h, w = size
    times = np.linspace(0.0, 1.0, n_frames)
    background = _Background.sample(rng, size)
    objects = [_sample_object(rng, size, n_objects, background.palette, drift) for _ in range(n_objects)]
    leaver = int(rng.integers(n_objects)) if leave_frame else None
    if leaver is not None:
        _make_leaver(objects[leaver], rng, size, times)
    depth = [int(i) for i in rng.permutation(n_objects)]  # far -> near
    lighting = _Lighting.sample(rng, size, drift)
    target = int(rng.integers(n_objects)) if occluder else None
    pillar = None
    if target is not None:
        pillar = _Pillar.sample(rng, objects[target], objects, times, size)
        if pillar is None:
            return None

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    masks = np.zeros((n_frames, h, w), np.uint8)
    inside = np.zeros((n_frames, n_objects), bool)
    outside = np.zeros((n_frames, n_objects), bool)
    for t, u in enumerate(times.tolist()):
        img = background.view(u, size)
        for k in depth:
            inside[t, k], outside[t, k] = _placement(objects[k], u, size)
            img = _draw_object(img, masks[t], objects[k], k + 1, u)
        if pillar is not None:
            img = pillar.draw(img, masks[t], t, xx, yy)
        img = lighting.apply(img, u, xx, yy)
        if noise_std > 0:
            img = img + rng.normal(0.0, noise_std, img.shape)
        frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)

    area = np.stack([(masks == k + 1).sum(axis=(1, 2)) for k in range(n_objects)], axis=1)  # (T, K)
    if ((area >= 4).sum(axis=0) < max(1, n_frames // 3)).any():
        return None
    events: dict[str, Any] = {
        "n_objects": n_objects,
        "depth_order": [k + 1 for k in depth],
        "leaving_object": None,
        "outside_frames": [],
        "occluded_object": None,
        "occluded_frames": [],
    }
    if leaver is not None:
        gone = np.flatnonzero(outside[:, leaver])
        seen = np.flatnonzero(area[:, leaver] > 0)
        if gone.size == 0 or seen.size == 0 or not (seen.min() < gone.min() and seen.max() > gone.max()):
            return None
        events["leaving_object"], events["outside_frames"] = leaver + 1, gone.tolist()
    if target is not None and pillar is not None:
        hidden = np.flatnonzero(inside[:, target] & (area[:, target] == 0))
        if pillar.t_occ not in hidden:
            return None
        events["occluded_object"], events["occluded_frames"] = target + 1, hidden.tolist()
    return SyntheticSequence(name=name, frames=frames, masks=masks, events=events)


# ---------------------------------------------------------------------------------- dataset
def sequence_name(index: int) -> str:
    """Folder name of the ``index``-th synthetic sequence."""
    return f"synthetic-{index:03d}"


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of sequence ``index``: independent of how many sequences are generated."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),)))


def generate_sequence(params: SyntheticParams, index: int) -> SyntheticSequence:
    """Render sequence ``index`` of the dataset described by ``params`` (in memory)."""
    rng = sequence_rng(params.seed, index)
    n_objects = int(rng.integers(params.min_objects, params.max_objects + 1))
    return render_sequence(
        rng,
        params.n_frames,
        tuple(params.size),
        n_objects,
        leave_frame=params.leave_frame,
        occluder=params.occluder,
        drift=params.drift,
        noise_std=params.noise_std,
        name=sequence_name(index),
    )


def generate_dataset(
    root: str | Path,
    n_sequences: int = 4,
    n_frames: int = 30,
    size: tuple[int, int] = (120, 200),
    max_objects: int = 2,
    seed: int = 0,
    with_scribbles: bool = True,
    *,
    min_objects: int = 1,
    resolution: str = "480p",
    leave_frame: bool = True,
    occluder: bool = True,
    drift: float = 0.6,
    noise_std: float = 2.0,
    jpeg_quality: int = 90,
    n_scribble_variants: int = 3,
    overwrite: bool = False,
) -> Path:
    """Write a DAVIS-layout synthetic dataset to ``root`` and return ``root``.

    Writes ``JPEGImages/<resolution>/``, ``Annotations/<resolution>/`` (DAVIS palette PNGs),
    ``ImageSets/2017/train.txt``, ``Scribbles/`` (initial scribbles from the scribble robot when
    ``with_scribbles``), the metadata file and ``synthetic.json`` (parameters and per-sequence
    events). The folder is built aside and moved into place only when complete.
    """
    params = SyntheticParams.create(
        n_sequences=n_sequences,
        n_frames=n_frames,
        size=size,
        max_objects=max_objects,
        min_objects=min_objects,
        seed=seed,
        leave_frame=leave_frame,
        occluder=occluder,
        drift=drift,
        noise_std=noise_std,
        jpeg_quality=jpeg_quality,
        resolution=resolution,
        with_scribbles=with_scribbles,
        n_scribble_variants=n_scribble_variants,
    )
    root = Path(root)
    with staged_directory(root, overwrite=overwrite, owned=OWNED_ENTRIES, marker=INFO_FILE) as tmp:
        names, events = [], {}
        for i in range(params.n_sequences):
            seq = generate_sequence(params, i)
            img_dir = layout.images_dir(tmp, resolution, seq.name)
            ann_dir = layout.annotations_dir(tmp, resolution, seq.name)
            for t in range(params.n_frames):
                stem = layout.frame_file_name(t)
                write_jpeg(img_dir / f"{stem}{layout.FRAME_EXT}", seq.frames[t], params.jpeg_quality)
                write_mask(ann_dir / f"{stem}{layout.MASK_EXT}", seq.masks[t])
            names.append(seq.name)
            events[seq.name] = seq.events
            _log.debug("synthetic %s: %s", seq.name, seq.events)
        atomic_write_text(layout.image_set_file(tmp, "2017/train"), "\n".join(names) + "\n")
        if with_scribbles:
            from ivos_rl.data.init_scribbles import write_initial_scribbles

            write_initial_scribbles(
                tmp, resolution=resolution, n_variants=params.n_scribble_variants, seed=params.seed
            )
        write_metadata(tmp, resolution, objects="all")  # generated: an object may be hidden at t=0
        info = {
            "format": GENERATOR_FORMAT,
            "version": GENERATOR_VERSION,
            "params": _params_to_json(params),
            "sequences": events,
        }
        atomic_write_json(tmp / INFO_FILE, info)
    return root


def _params_to_json(params: SyntheticParams) -> dict[str, Any]:
    out = asdict(params)
    out["size"] = list(params.size)
    return out


def read_synthetic_info(root: str | Path) -> dict[str, Any]:
    """Parameters and per-sequence events of a generated dataset (``synthetic.json``)."""
    path = Path(root) / INFO_FILE
    if not path.is_file():
        raise DatasetError(f"not a generated dataset (no {INFO_FILE})", path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{INFO_FILE} is not valid JSON ({exc})", path) from exc
    if not isinstance(info, dict) or info.get("format") != GENERATOR_FORMAT:
        raise CorruptFileError(
            f"not a synthetic dataset description (format must be {GENERATOR_FORMAT!r})", path
        )
    return info


def synthetic_dataset(
    root: str | Path,
    n_sequences: int = 4,
    n_frames: int = 30,
    size: tuple[int, int] = (120, 200),
    max_objects: int = 2,
    seed: int = 0,
    with_scribbles: bool = True,
    working_size: tuple[int, int] | None = None,
    **kwargs: Any,
) -> DavisDataset:
    """The :class:`DavisDataset` of a synthetic dataset, generating it first if ``root`` is empty.

    Meant as a Hydra ``_target_``: an existing folder is reused only if it was generated with the
    same parameters; otherwise a DatasetError says which differ (never a silent regeneration).
    """
    root = Path(root)
    wanted = SyntheticParams.create(
        n_sequences=n_sequences,
        n_frames=n_frames,
        size=size,
        max_objects=max_objects,
        seed=seed,
        with_scribbles=with_scribbles,
        **kwargs,
    )
    if root.is_dir() and any(root.iterdir()):
        stored = read_synthetic_info(root)["params"]
        want = _params_to_json(wanted)
        diff = {k: (stored.get(k), v) for k, v in want.items() if stored.get(k) != v}
        if diff:
            raise DatasetError(
                f"synthetic dataset was generated with different parameters (stored, wanted): {diff}",
                root / INFO_FILE,
            )
    else:
        generate_dataset(
            root, n_sequences, n_frames, wanted.size, max_objects, seed, with_scribbles, **kwargs
        )
    return DavisDataset(root, resolution=wanted.resolution, image_set="2017/train", working_size=working_size)


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"size must look like 120x200 (HxW), got {text!r}")
    return int(parts[0]), int(parts[1])


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl make-synthetic OUT --sequences 4 --frames 30 --size 120x200 --objects 2 --seed 0``."""
    parser = argparse.ArgumentParser(prog="ivos-rl make-synthetic", description=main.__doc__)
    parser.add_argument("out", type=Path, help="output folder (absent or empty unless --overwrite)")
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=_parse_size, default=(120, 200), help="HxW, e.g. 120x200")
    parser.add_argument("--objects", type=int, default=2, help="maximum objects per sequence")
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", default="480p", help="resolution folder name")
    parser.add_argument("--drift", type=float, default=0.6, help="appearance drift strength in [0, 1]")
    parser.add_argument("--no-scribbles", action="store_true", help="do not write initial scribbles")
    parser.add_argument("--no-occluder", action="store_true", help="no full-occlusion pillar")
    parser.add_argument("--no-leave", action="store_true", help="no object leaves the frame")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a folder make-synthetic wrote before (only its own entries; other files are kept)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        root = generate_dataset(
            args.out,
            n_sequences=args.sequences,
            n_frames=args.frames,
            size=args.size,
            max_objects=args.objects,
            seed=args.seed,
            with_scribbles=not args.no_scribbles,
            min_objects=args.min_objects,
            resolution=args.resolution,
            leave_frame=not args.no_leave,
            occluder=not args.no_occluder,
            drift=args.drift,
            overwrite=args.overwrite,
        )
    except IvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.sequences} synthetic sequences x {args.frames} frames to {root}")
    return 0
