"""The propagation backend's faster equivalents give the same bits as the plain formulas they
replace (issue 14: the default outputs, and every row, model and agent made from them, must not
change). The whole-round check on real videos is ``benchmarks/round_digests.py --check``."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from scipy.special import comb

from ivos_rl.backends._colour_model import ColourModel, smooth_histograms
from ivos_rl.backends._flow import as_float32
from ivos_rl.backends._interactive_seg import argmax0
from ivos_rl.backends.base import probs_to_uint8
from ivos_rl.backends.propagation import (
    _FLOAT64_OF_UINT8,
    PropagationBackend,
    _boundary_distance,
    _fb_confidence,
    _near_boundary,
    _softmax0,
    _to_float,
)
from ivos_rl.errors import InputValidationError
from ivos_rl.scribbles import bezier_curve


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bytes of a float array, so that -0.0 != 0.0 and NaN payloads count."""
    return np.ascontiguousarray(a).view(np.uint8)


def test_as_float32_converts_every_finite_float16_exactly_and_keeps_negative_zero() -> None:
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    finite = every[np.isfinite(every)]
    assert finite.size == 63488
    flow = finite.reshape(-1, 62, 2)  # (h, w, 2) like a flow field, and a strided box of it
    np.testing.assert_array_equal(_bits(as_float32(flow)), _bits(flow.astype(np.float32)))
    box = flow[100:300, 3:50]
    np.testing.assert_array_equal(_bits(as_float32(box)), _bits(box.astype(np.float32)))
    assert np.signbit(as_float32(np.array([[[-0.0, 0.0]]], np.float16))).tolist() == [[[True, False]]]


def _bezier_reference(points: np.ndarray, nb_points: int) -> np.ndarray:
    """davisinteractive's Bernstein form, computed per curve as before the table."""
    t = np.linspace(0.0, 1.0, nb_points).reshape(1, -1)
    i = np.arange(len(points)).reshape(-1, 1)
    n = len(points) - 1
    return (comb(n, i) * (t ** (n - i)) * (1 - t) ** i).T.dot(points)


@pytest.mark.parametrize("nb_points", [1000, 37])
def test_bezier_from_the_power_table_equals_the_per_curve_formula(nb_points: int) -> None:
    rng = np.random.default_rng(0)
    # lengths below and beyond the first table (64 rows), so the table grows in between
    for n in [1, 2, 3, 17, 64, 65, 130, 5, 300, 1000]:
        if n > nb_points:
            continue
        pts = rng.integers(0, 400, (n, 2)).astype(np.float64)
        got, want = bezier_curve(pts, nb_points), _bezier_reference(pts, nb_points)
        np.testing.assert_array_equal(_bits(got), _bits(want))


def test_two_label_argmax_breaks_ties_towards_the_background() -> None:
    p = np.array([[[0.5, 0.2, 0.7]], [[0.5, 0.8, 0.3]]], dtype=np.float32)
    assert argmax0(p).tolist() == [[0, 1, 0]]
    assert argmax0(p).dtype == np.uint8
    three = np.array([[[0.2, 0.4]], [[0.5, 0.4]], [[0.5, 0.2]]], dtype=np.float32)
    assert argmax0(three).tolist() == [[1, 0]]  # the generic loop: lowest label on ties
    u = np.random.default_rng(1).integers(0, 256, (2, 30, 40)).astype(np.uint8)
    np.testing.assert_array_equal(argmax0(u), argmax0(_to_float(u)))  # uint8 and float agree


@pytest.mark.parametrize("n_labels", [2, 3, 5])
def test_argmax0_is_numpys_argmax_over_labels(n_labels: int) -> None:
    rng = np.random.default_rng(n_labels)
    for dtype in (np.uint8, np.float32, np.float64):  # coarse values: many ties between labels
        p = rng.integers(0, 4, (n_labels, 37, 41)).astype(dtype)
        np.testing.assert_array_equal(argmax0(p), np.argmax(p, axis=0))
    energy = rng.normal(size=(n_labels, 20, 30)).astype(np.float32)
    energy[:, :5] = 1e5  # forbidden labels everywhere on some rows (a tie at HARD)
    np.testing.assert_array_equal(argmax0(-energy), np.argmax(-energy, axis=0))


def test_in_place_arithmetic_matches_the_plain_formulas() -> None:
    rng = np.random.default_rng(2)
    flow = rng.normal(0, 2, (20, 30, 2)).astype(np.float32)
    back = rng.normal(0, 2, (20, 30, 2)).astype(np.float32)
    plain = np.exp(-0.5 / 0.5**2 * ((flow[..., 0] + back[..., 0]) ** 2 + (flow[..., 1] + back[..., 1]) ** 2))
    np.testing.assert_array_equal(_bits(_fb_confidence(flow, back, 0.5)), _bits(plain))
    p = rng.random((2, 20, 30)).astype(np.float32)
    b = cv2.GaussianBlur(p[0], (0, 0), 3.0)
    want = np.clip(4.0 * b * (1.0 - b), 0.0, 1.0)
    np.testing.assert_array_equal(_bits(_near_boundary(p, 3.0)), _bits(want))
    score = rng.normal(0, 3, (2, 20, 30)).astype(np.float32)
    e = np.exp(score - np.maximum(score[0], score[1]))
    np.testing.assert_array_equal(_bits(_softmax0(score.copy())), _bits(e / e.sum(axis=0)))


def test_uint8_quantisation_rounds_half_to_even_and_clips() -> None:
    # 0.5/255 -> 0 (round half to even), 1.5/255 -> 2, out of range clipped, shape and dtype kept
    x = np.array([[0.5 / 255, 1.5 / 255, -0.1, 1.2, 1.0]], dtype=np.float32)
    assert probs_to_uint8(x).tolist() == [[0, 2, 0, 255, 255]]
    x = np.random.default_rng(3).random((2, 7, 9)).astype(np.float32)
    plain = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(probs_to_uint8(x), plain)
    assert np.array_equal(x, np.random.default_rng(3).random((2, 7, 9)).astype(np.float32))  # input untouched


def test_uint8_quantisation_by_opencv_equals_numpys_near_every_rounding_edge() -> None:
    # Non-negative inputs take OpenCV's path (checked once for all 2^30 float32 in [0, 1]); here
    # the values around every k / 255 and (k + 0.5) / 255, a few ulps each way, and beyond 1.
    edges = np.concatenate([np.arange(256) / 255.0, (np.arange(255) + 0.5) / 255.0]).astype(np.float32)
    near = edges.view(np.int32)[:, None] + np.arange(-4, 5)[None, :]
    x = np.concatenate([near.ravel().astype(np.int32).view(np.float32), [0.0, 1.0, 1.0 + 1e-7, 3.0, np.inf]])
    x = x[x >= 0].astype(np.float32)
    plain = np.clip(np.rint(x * np.float32(255.0)), 0, 255).astype(np.uint8)
    for shape in ((-1,), (1, -1), (x.size // 7, -1) if x.size % 7 == 0 else (1, 1, -1)):
        np.testing.assert_array_equal(probs_to_uint8(x.reshape(shape)).ravel(), plain)
    strided = np.random.default_rng(4).random((3, 20, 30)).astype(np.float32)[:, ::2, 1::3]
    np.testing.assert_array_equal(probs_to_uint8(strided), np.rint(strided * 255.0).astype(np.uint8))
    with_nan = np.array([0.2, np.nan, 0.7], dtype=np.float32)  # numpy's path: NaN is not >= 0
    with np.errstate(invalid="ignore"):  # NaN has no uint8 value
        assert probs_to_uint8(with_nan)[[0, 2]].tolist() == [51, 178]
    huge = np.array([0.5, 3e9, np.inf], dtype=np.float32)  # numpy's path: OpenCV would give 0
    assert probs_to_uint8(huge).tolist() == [128, 255, 255]


def test_local_colour_model_from_uint8_labels_has_the_float_labels_counts() -> None:
    """The local colour model's counts from uint8 soft labels equal those from the float labels
    (u / 255) the step converted before: same pixels, same weights, same float64 sums."""
    assert _FLOAT64_OF_UINT8[255] == 1.0 and _FLOAT64_OF_UINT8[0] == 0.0
    widened = _to_float(np.arange(256, dtype=np.uint8)).astype(np.float64)
    np.testing.assert_array_equal(_FLOAT64_OF_UINT8, widened)
    rng = np.random.default_rng(4)
    h, w = 40, 60
    fg = np.zeros((h, w), dtype=np.uint8)
    fg[10:30, 15:45] = rng.integers(130, 256, (20, 30))
    u = np.stack([255 - fg, fg]).astype(np.uint8)
    bins = rng.integers(0, 16**3, (h, w)).astype(np.uint16)
    backend = PropagationBackend(colour_bins=16)
    backend.n_labels = 2
    model = backend._boundary_model(u, bins)
    assert model is not None
    p = _to_float(u)  # the float path, written out
    labels = (p[1] > p[0]).astype(np.uint8)
    near = _boundary_distance(labels) < backend.prop_params.local_band
    ref = ColourModel(2, 16)
    ref.add(bins[near], p[:, near])
    np.testing.assert_array_equal(_bits(model.counts), _bits(ref.counts))
    assert model.counts.sum() > 0


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3])
def test_histogram_smoothing_equals_scipys_gaussian_filter(sigma: float) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(int(sigma * 10))
    for shape in [(2, 16, 16, 16), (3, 16, 16), (1, 7, 5, 9)]:
        hists = rng.random(shape) * 500.0
        hists[rng.random(shape) < 0.7] = 0.0  # sparse, like a few strokes' colours
        want = ndimage.gaussian_filter(hists, (0.0,) + (sigma,) * (len(shape) - 1), mode="nearest")
        np.testing.assert_array_equal(_bits(smooth_histograms(hists, sigma)), _bits(want))


def test_stroke_pixels_and_length_are_kept_and_equal_the_plain_raster() -> None:
    from ivos_rl.backends._interactive_seg import Stroke, rasterise
    from ivos_rl.scribbles import bresenham

    rng = np.random.default_rng(3)
    strokes = [Stroke(int(rng.integers(0, 3)), rng.random((int(n), 2)), 1) for n in rng.integers(1, 40, 6)]
    strokes.append(Stroke(1, np.zeros((0, 2)), 1))
    shape = (37, 53)
    plain = np.full(shape, -1, dtype=np.int16)
    for s in strokes:
        if len(s.path):
            pix = bresenham((s.path * [shape[1] - 1, shape[0] - 1]).astype(np.int64))
            plain[pix[:, 1], pix[:, 0]] = s.label
    for _ in range(2):  # computed, then from the stroke's memo
        np.testing.assert_array_equal(rasterise(strokes, shape), plain)
    kept = strokes[0].pixels(shape)
    assert strokes[0].pixels(shape) is kept and not kept.flags.writeable
    assert strokes[-1].pixels(shape).shape == (0, 2) and strokes[-1].length(shape) == 1.0
    pts = strokes[0].path * [shape[1] - 1, shape[0] - 1]
    want = max(float(np.sum(np.hypot(*np.diff(pts, axis=0).T))), 1.0) if len(pts) > 1 else 1.0
    assert strokes[0].length(shape) == want and strokes[0].length((9, 9)) != want
    from dataclasses import replace

    moved = replace(strokes[0], path=strokes[0].path[:1])  # a new stroke: nothing kept from the old one
    assert moved.pixels(shape).shape == (1, 2) and moved.length(shape) == 1.0
    # the stroke keeps its own read-only copy: the caller's array changing later cannot stale the memo
    mine = np.array([[0.1, 0.1], [0.9, 0.1]])
    stroke = Stroke(1, mine, 1)
    before = stroke.pixels(shape).copy()
    mine[:] = 0.5
    assert not stroke.path.flags.writeable and stroke.path[0, 0] == 0.1
    np.testing.assert_array_equal(stroke.pixels(shape), before)


def _plain_loosened_prior(
    prior: np.ndarray, strokes: list[Any], dists: list[Any], win: Any, prm: Any
) -> np.ndarray:
    """The correction loop of ``FrameSegmenter._log_prior`` as written before (whole frame)."""
    out = prior.astype(np.float32)
    n_labels = out.shape[0]
    for s, d in zip(strokes, dists, strict=True):
        sigma = prm.correction_sigma * win.length(s)
        g = d / sigma
        g *= g
        g *= -0.5
        np.exp(g, out=g)
        g *= prm.correction_strength
        out *= 1.0 - g
        out += g * (prm.correction_uniform / n_labels)
        out[s.label] += g * (1.0 - prm.correction_uniform)
        radius = float(np.clip(prm.core_fraction * win.length(s), 1.5, prm.core_max))
        core = (d <= radius).astype(np.float32) * prm.core_strength
        out *= 1.0 - core
        out[s.label] += core
    return np.log(np.clip(out, prm.prior_floor, 1.0, out=out), out=out)


@pytest.mark.parametrize("uniform", [1.0, 0.6])
def test_the_loosened_prior_on_boxes_equals_the_whole_frame_formula(uniform: float) -> None:
    from dataclasses import replace

    from ivos_rl.backends._interactive_seg import FrameSegmenter, SegParams, Stroke, _Window

    rng = np.random.default_rng(7)
    shape, n_labels = (120, 200), 3
    prm = replace(SegParams(), correction_uniform=uniform, support_rate=0.0)
    u = rng.integers(0, 256, (n_labels, *shape)).astype(np.float32)
    prior = _to_float((u / u.sum(axis=0) * 255).astype(np.uint8))
    prior[:, :, :20] = 0.0  # zero probabilities stay zero (non-negative: x 1 and + 0 change nothing)
    win = _Window(shape)
    strokes = [
        Stroke(1, np.array([[0.50, 0.50], [0.52, 0.51]]), 2),  # 4 px: loosens a small box only
        Stroke(2, np.array([[0.05, 0.10], [0.90, 0.80]]), 2),  # long: the whole frame
        Stroke(0, np.array([[0.95, 0.95]]), 2),  # one point
    ]
    dists = [win.distance(s) for s in strokes]
    logp, _, _ = FrameSegmenter(n_labels, 16, prm)._log_prior(win, strokes, prior, dists)
    want = _plain_loosened_prior(prior, strokes, dists, win, prm)
    np.testing.assert_array_equal(_bits(logp), _bits(want))


def test_opencv_lookup_equals_numpys_gather() -> None:
    from ivos_rl.backends.base import lookup_uint8
    from ivos_rl.backends.propagation import _certainty_power_table

    every = np.arange(256, dtype=np.uint8)
    rng = np.random.default_rng(11)
    tables = (_FLOAT64_OF_UINT8, _certainty_power_table(2, 3.0), rng.normal(size=256).astype(np.float32))
    for table in tables:
        for idx in (every, every.reshape(16, 16), rng.integers(0, 256, (2, 777)).astype(np.uint8),
                    np.zeros((0,), np.uint8), np.zeros((3, 0), np.uint8)):
            got, want = lookup_uint8(table, idx), table[idx]
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(_bits(got), _bits(want))


def _plain_quantise_motion(flow: np.ndarray, bins: int) -> np.ndarray:
    """``quantise_motion`` as written before (numpy's median and temporaries)."""
    f = flow.astype(np.float32)
    rel = f - np.median(f.reshape(-1, 2), axis=0)
    mag = np.hypot(rel[..., 0], rel[..., 1])
    step = max(float(np.percentile(mag, 95)) * 2.0 / bins, 0.25)
    q = np.clip(np.floor(rel / step) + bins // 2, 0, bins - 1).astype(np.int64)
    return q[..., 0] * bins + q[..., 1]


@pytest.mark.parametrize("shape", [(24, 31, 2), (17, 9, 2), (1, 1, 2)])
def test_motion_bins_of_float16_flows_equal_the_plain_formula(shape: tuple[int, int, int]) -> None:
    from ivos_rl.backends._interactive_seg import _median_float16, quantise_motion

    rng = np.random.default_rng(sum(shape))
    for scale, zeros in ((0.3, 0.0), (8.0, 0.3), (40.0, 0.9)):  # slow, fast, mostly still (ties at 0)
        flow = (rng.normal(0.0, scale, shape) + rng.normal(0.0, scale)).astype(np.float16)
        flow[rng.random(shape) < zeros] = 0.0
        flow[rng.random(shape) < zeros / 4] = np.float16(-0.0)
        for c in (0, 1):
            assert _median_float16(flow[..., c]) == float(np.median(flow[..., c].astype(np.float32)))
        for bins in (4, 16):
            np.testing.assert_array_equal(quantise_motion(flow, bins), _plain_quantise_motion(flow, bins))
            wide = flow.astype(np.float32)  # the generic road
            np.testing.assert_array_equal(quantise_motion(wide, bins), _plain_quantise_motion(wide, bins))
    flow = np.zeros(shape, np.float16)
    flow.flat[0] = np.float16(np.nan)
    with pytest.raises(InputValidationError, match="finite"):
        _median_float16(flow[..., 0])  # frame (0, 0)'s x motion is NaN


def test_float16_codes_by_value_order_every_code() -> None:
    # The median counts codes and reads them in value order: every code exactly once, the finite
    # values non-decreasing (-0.0 just before +0.0), the infinities at the ends of the finite run.
    from ivos_rl.backends._interactive_seg import _FLOAT16_CODES_BY_VALUE as codes

    assert np.array_equal(np.sort(codes), np.arange(65536))
    values = codes.astype(np.uint16).view(np.float16).astype(np.float64)
    finite = values[~np.isnan(values)]
    assert np.all(np.diff(finite) >= 0) and finite[0] == -np.inf and finite[-1] == np.inf
    zeros = np.flatnonzero(values == 0)
    assert codes[zeros[0]] == 0x8000 and codes[zeros[1]] == 0x0000 and zeros[1] == zeros[0] + 1


def test_sparse_colour_samples_count_like_add() -> None:
    # A stroke's weights in a box are mostly zero: skipping them gives add's sums bit for bit.
    from ivos_rl.backends._colour_model import ColourModel

    rng = np.random.default_rng(5)
    for _ in range(50):
        n_labels, dims, bins = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 9))
        idx = rng.integers(0, bins**dims, (13, 17))
        w = rng.choice([0.0, 20.0, 0.3, 1e-7], (n_labels, 13 * 17), p=[0.85, 0.05, 0.05, 0.05])
        w[rng.random(n_labels) < 0.3] = 0.0  # labels without samples
        a, b = ColourModel(n_labels, bins, dims=dims), ColourModel(n_labels, bins, dims=dims)
        a.counts += 0.5
        b.counts += 0.5
        a.add(idx, w)
        b.add_sparse(idx, w)
        assert a.counts.tobytes() == b.counts.tobytes()
