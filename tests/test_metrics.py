"""Jaccard / F-measure on tiny hand-made masks whose values are computed by hand in comments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ivos_rl.errors import InputValidationError, IvosError
from ivos_rl.metrics import (
    as_label_stack,
    batched_f_measure,
    batched_j_and_f,
    batched_jaccard,
    batched_jaccard_and_f_measure,
    boundary_radius,
    disk_footprint,
    object_ids,
    seg2bmap,
)


def _square(size: int, top: int, left: int, side: int, value: int = 1) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[top : top + side, left : left + side] = value
    return m


# ----------------------------------------------------------------------------- Jaccard


def test_jaccard_overlapping_blocks() -> None:
    # gt: 2x2 block at cols 0-1, pred: 2x2 block at cols 1-2 -> |A∩B| = 2, |A∪B| = 6
    gt = np.zeros((1, 4, 4), np.uint8)
    pr = np.zeros((1, 4, 4), np.uint8)
    gt[0, 0:2, 0:2] = 1
    pr[0, 0:2, 1:3] = 1
    assert batched_jaccard(gt, pr) == pytest.approx([1 / 3])


def test_jaccard_empty_union_is_one_and_empty_pred_or_gt_is_zero() -> None:
    gt = np.zeros((3, 5, 5), np.uint8)
    pr = np.zeros((3, 5, 5), np.uint8)
    gt[1, 0, 0] = 1  # frame 1: object only in gt (empty prediction) -> 0
    pr[2, 4, 4] = 1  # frame 2: object only in prediction (empty gt) -> 0
    # frame 0: object absent from both -> empty union -> 1
    np.testing.assert_array_equal(batched_jaccard(gt, pr), [1.0, 0.0, 0.0])


def test_void_is_not_an_object_but_counts_against_prediction() -> None:
    gt = np.zeros((1, 2, 4), np.uint8)
    gt[0, 0, 0:2] = 1
    gt[0, 0, 2:4] = 255  # void
    pr = np.zeros_like(gt)
    pr[0, 0, :] = 1  # covers object (2 px) and void (2 px): |A∩B| = 2, |A∪B| = 4
    assert object_ids(gt).tolist() == [1]
    assert batched_jaccard(gt, pr, average_over_objects=False).shape == (1, 1)
    assert batched_jaccard(gt, pr) == pytest.approx([0.5])


def test_nb_objects_larger_than_present_adds_perfect_columns() -> None:
    gt = np.zeros((1, 4, 4), np.uint8)
    pr = np.zeros_like(gt)
    gt[0, 0, 0:2] = 1
    pr[0, 0, 0:1] = 1  # object 1: J = 1/2; objects 2, 3 absent everywhere: J = 1
    per_obj = batched_jaccard(gt, pr, average_over_objects=False, nb_objects=3)
    np.testing.assert_allclose(per_obj, [[0.5, 1.0, 1.0]])
    assert batched_jaccard(gt, pr, nb_objects=3) == pytest.approx([2.5 / 3])


def test_non_contiguous_ids_are_inferred_in_sorted_order() -> None:
    gt = np.zeros((1, 3, 3), np.int32)
    gt[0, 0, 0] = 5
    gt[0, 2, 2] = 2
    pr = np.zeros_like(gt)
    pr[0, 2, 2] = 2  # id 2 perfect, id 5 missed
    np.testing.assert_array_equal(batched_jaccard(gt, pr, average_over_objects=False), [[1.0, 0.0]])


def test_float_and_bool_inputs() -> None:
    gt = np.zeros((1, 4, 4), bool)
    gt[0, :2, :2] = True
    pr = gt.astype(np.float64)
    assert batched_jaccard(gt, pr) == pytest.approx([1.0])


# ----------------------------------------------------------------------------- boundaries


def test_seg2bmap_square_has_perimeter_16_and_is_offset_towards_origin() -> None:
    seg = _square(10, 3, 3, 4).astype(bool)  # rows/cols 3..6
    b = seg2bmap(seg)
    expected = np.zeros((10, 10), bool)
    expected[2, 2:7] = True  # row above, from the top-left diagonal neighbour
    expected[2:7, 2] = True  # column left
    expected[3:7, 6] = True  # last column of the square
    expected[6, 3:7] = True  # last row of the square
    np.testing.assert_array_equal(b, expected)
    assert b.sum() == 16


def test_seg2bmap_image_edge_rules() -> None:
    seg = np.zeros((3, 3), bool)
    seg[2, 2] = True  # bottom-right pixel
    # (1,1) sees it south-east, (1,2) south, (2,1) east; the corner itself is never a boundary
    expected = np.zeros((3, 3), bool)
    expected[1, 1] = expected[1, 2] = expected[2, 1] = True
    np.testing.assert_array_equal(seg2bmap(seg), expected)
    full = np.ones((2, 3), bool)  # no change anywhere -> no boundary, even at the edges
    assert not seg2bmap(full).any()


def test_disk_footprint_matches_the_skimage_construction() -> None:
    np.testing.assert_array_equal(disk_footprint(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk_footprint(0).tolist() == [[1]]
    assert disk_footprint(8).shape == (17, 17) and disk_footprint(8).sum() == 197
    assert disk_footprint(2.5).shape == (6, 6)  # non-integer radius: even-sized grid as in skimage
    assert boundary_radius((480, 854)) == 8.0  # ceil(0.008 * 979.6)
    assert boundary_radius((10, 10), 2.5) == 2.5


def test_f_measure_shifted_square() -> None:
    gt = _square(10, 3, 3, 4)[None]
    pr = _square(10, 3, 4, 4)[None]  # shifted right by one pixel
    # tolerance 0 (exact positions): 8 of 16 boundary pixels coincide -> P = R = 0.5 -> F = 0.5
    assert batched_f_measure(gt, pr, bound_th=0) == pytest.approx([0.5])
    # default tolerance on 10x10 is ceil(0.008 * 14.1) = 1 pixel: every pixel is matched -> F = 1
    assert batched_f_measure(gt, pr) == pytest.approx([1.0])
    # J of the same pair: 12 / 20
    assert batched_jaccard(gt, pr) == pytest.approx([0.6])
    jf = batched_j_and_f(gt, pr, bound_th=0)
    assert jf == pytest.approx([(0.6 + 0.5) / 2])


def test_f_measure_edge_cases() -> None:
    gt = np.zeros((3, 6, 6), np.uint8)
    pr = np.zeros((3, 6, 6), np.uint8)
    gt[1, 1:3, 1:3] = 1  # frame 1: no predicted boundary -> P = 1, R = 0 -> F = 0
    pr[2, 1:3, 1:3] = 1  # frame 2: no true boundary -> P = 0, R = 1 -> F = 0
    # frame 0: neither boundary -> F = 1
    np.testing.assert_array_equal(batched_f_measure(gt, pr), [1.0, 0.0, 0.0])


def test_f_measure_partial_match_by_hand() -> None:
    # gt: 4x4 square (boundary 16 px); pred: the same square plus a far away single pixel whose
    # boundary adds 4 px (itself, and its north-west, north, west neighbours), none near the square.
    gt = _square(20, 2, 2, 4)[None]
    pr = gt.copy()
    pr[0, 15, 15] = 1
    # tolerance 1: P = 16 / 20, R = 1 -> F = 2P/(P+1) = 1.6 / 1.8 = 8/9
    assert batched_f_measure(gt, pr, bound_th=1) == pytest.approx([8 / 9])


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        # A lone pixel's boundary is the 2x2 block {(-1,-1), (-1,0), (0,-1), (0,0)} around it.
        ((0, 5), 1.0),  # the blocks' nearest columns are 4 apart, their far ones 5 (= r): all match
        ((0, 6), 0.5),  # near columns exactly r = 5 apart (match), far ones r + 1 = 6 (no): P = R = 1/2
        ((0, 7), 0.0),  # every pair is at least r + 1 = 6 apart
        # diagonal, in the ring outside the inscribed square (half-size 3 for r = 5): the corners
        # (3, 4) apart are exactly r = 5 apart (9 + 16 = 25 <= 25); every other pair has
        # dy^2 + dx^2 >= 32 > 25. One of 4 pixels matched each way: P = R = 1/4.
        ((4, 5), 0.25),
    ],
)
def test_f_measure_at_distance_exactly_r_and_r_plus_1(
    shift: tuple[int, int], expected: float, dtype: type
) -> None:
    gt = np.zeros((1, 30, 30), dtype)
    pr = np.zeros((1, 30, 30), dtype)
    gt[0, 10, 10] = 1
    pr[0, 10 + shift[0], 10 + shift[1]] = 1
    # bound_th >= 1 is the radius itself: r = 5
    assert batched_f_measure(gt, pr, bound_th=5) == pytest.approx([expected])
    assert _slow_f(gt[0] == 1, pr[0] == 1, 5) == pytest.approx(expected)


def _slow_f(gt: np.ndarray, pr: np.ndarray, radius: float) -> float:
    """Straightforward full-frame F used to check the cropped / two-stage implementation."""
    gb, pb = seg2bmap(gt), seg2bmap(pr)
    fp = disk_footprint(radius).astype(bool)
    ng, npr = gb.sum(), pb.sum()
    if ng == 0 and npr == 0:
        return 1.0
    if ng == 0 or npr == 0:
        return 0.0
    # scipy dilation mirrors the structuring element and centres it at size // 2 like cv2 for odd sizes
    gd = ndimage.binary_dilation(gb, structure=fp[::-1, ::-1])
    pd = ndimage.binary_dilation(pb, structure=fp[::-1, ::-1])
    p = (pb & gd).sum() / npr
    r = (gb & pd).sum() / ng
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@pytest.mark.parametrize("bound_th", [0.008, 0.1, 3])
def test_matches_straightforward_implementation_on_random_blobs(bound_th: float) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 3, size=(4, 6, 7)).astype(np.uint8)
    gt = np.kron(small, np.ones((5, 5), np.uint8))  # (4, 30, 35) blocky objects 1, 2
    pr = gt.copy()
    noise = rng.random(gt.shape) < 0.05
    pr[noise] = rng.integers(0, 3, noise.sum())
    pr[:, :, :3] = 0  # objects touching the left edge get cut
    f = batched_f_measure(gt, pr, average_over_objects=False, bound_th=bound_th)
    radius = boundary_radius(gt.shape[1:], bound_th)
    for t in range(gt.shape[0]):
        for i, obj in enumerate((1, 2)):
            assert f[t, i] == pytest.approx(_slow_f(gt[t] == obj, pr[t] == obj, radius), abs=1e-12)


def test_scattered_noise_far_from_the_object_matches_straightforward_implementation() -> None:
    # radius 8 (bound_th=8): the three matching stages (inscribed square, bounding square, ring) all
    # act; the prediction is the object shifted by 6 px (between the 5-px inscribed half-size and the
    # 8-px radius) plus isolated pixels all over the frame, far outside the true object's box.
    rng = np.random.default_rng(3)
    gt = np.zeros((2, 90, 160), np.uint8)
    gt[:, 30:60, 40:90] = 1
    gt[1, 35:50, 100:130] = 2
    pr = np.roll(gt, (6, -6), axis=(1, 2))
    noise = rng.random(pr.shape) < 0.02
    pr[noise] = rng.integers(0, 3, noise.sum())
    f = batched_f_measure(gt, pr, average_over_objects=False, nb_objects=2, bound_th=8)
    for t in range(2):
        for i, obj in enumerate((1, 2)):
            assert f[t, i] == pytest.approx(_slow_f(gt[t] == obj, pr[t] == obj, 8.0), abs=1e-12)


def test_wide_integer_labels_are_compared_exactly() -> None:
    # 257 would read as 1 and -255 as 1 if int64 labels were cut to their low byte.
    gt = np.array([[[1, 1, 257, 257]]], np.int64)
    pr = np.array([[[1, 257, 1, -255]]], np.int64)
    # object 1: gt {0, 1}, pred {0, 2} -> J = 1 / 3
    assert batched_jaccard(gt, pr, nb_objects=1) == pytest.approx([1 / 3])
    # object 300 (> 255) is absent from both: empty union -> J = 1
    assert batched_jaccard(gt, pr, average_over_objects=False, nb_objects=300)[0, -1] == 1.0
    same = batched_jaccard_and_f_measure(np.where(gt == 1, 1, 0), np.where(pr == 1, 1, 0), nb_objects=1)
    np.testing.assert_array_equal(batched_jaccard_and_f_measure(gt, pr, nb_objects=1), same)


def test_several_objects_in_wide_labels_are_compared_exactly() -> None:
    # Two objects: each int64 frame is read once as uint8 when all its labels fit in 0..255, and
    # compared in int64 otherwise. Frame 0 fits; frame 1 holds 257 (low byte 1) and -254 (low byte 2).
    gt = np.array([[[1, 1, 2, 2]], [[1, 1, 2, 2]]], np.int64)
    pr = np.array([[[1, 0, 2, 0]], [[1, 257, 2, -254]]], np.int64)
    # both frames: object 1 gt {0, 1} pred {0} -> J = 1/2; object 2 gt {2, 3} pred {2} -> J = 1/2
    # (cutting frame 1 to its low bytes would give 1 for both objects)
    np.testing.assert_array_equal(batched_jaccard(gt, pr, False, nb_objects=2), [[0.5, 0.5], [0.5, 0.5]])
    swapped = batched_jaccard(gt.astype(">i8"), pr.astype(">i8"), False, nb_objects=2)  # big-endian
    np.testing.assert_array_equal(swapped, [[0.5, 0.5], [0.5, 0.5]])
    # big-endian 2**56 and 2**57 have the bytes of little-endian 1 and 2: no object here, J = 0
    far = np.array([[[2**56, 2**56, 2**57, 0]]], ">i8")
    np.testing.assert_array_equal(batched_jaccard(gt[:1].astype(">i8"), far, False, nb_objects=2), [[0, 0]])
    np.testing.assert_array_equal(
        batched_f_measure(gt, pr, False, nb_objects=2)[1],
        batched_f_measure(gt[:1], pr[:1], False, nb_objects=2)[0],
    )


def test_wide_labels_that_fit_give_the_uint8_figures() -> None:
    rng = np.random.default_rng(2)
    gt = np.kron(rng.integers(0, 4, (3, 5, 6)), np.ones((6, 6), np.int64))  # objects 1..3, (3, 30, 36)
    pr = np.roll(gt, (2, -3), axis=(1, 2))
    pr[rng.random(pr.shape) < 0.05] = 2
    wide = batched_jaccard_and_f_measure(gt, pr, nb_objects=3)
    narrow = batched_jaccard_and_f_measure(gt.astype(np.uint8), pr.astype(np.uint8), nb_objects=3)
    np.testing.assert_array_equal(wide[0], narrow[0])
    np.testing.assert_array_equal(wide[1], narrow[1])


def test_results_do_not_depend_on_the_thread_count() -> None:
    # 13 frames: spans of uneven length over 2 and 3 threads; each frame's figures are its own.
    rng = np.random.default_rng(4)
    gt = np.kron(rng.integers(0, 3, (13, 6, 8)), np.ones((5, 5), np.uint8))  # (13, 30, 40)
    pr = np.roll(gt, 2, axis=2)
    pr[rng.random(pr.shape) < 0.03] = 1
    one = batched_jaccard_and_f_measure(gt, pr, nb_objects=2, threads=1)
    for threads in (2, 3, 64):
        many = batched_jaccard_and_f_measure(gt, pr, nb_objects=2, threads=threads)
        np.testing.assert_array_equal(many[0], one[0])
        np.testing.assert_array_equal(many[1], one[1])
    # frame by frame, as separate calls: the same figures again
    np.testing.assert_array_equal(
        np.concatenate(
            [batched_jaccard(gt[t : t + 1], pr[t : t + 1], False, nb_objects=2) for t in range(13)]
        ),
        one[0],
    )
    assert batched_j_and_f(gt, pr, nb_objects=2, threads=2) == pytest.approx(
        batched_j_and_f(gt, pr, nb_objects=2)
    )


def test_combined_equals_separate_calls() -> None:
    rng = np.random.default_rng(1)
    gt = np.kron(rng.integers(0, 3, (3, 4, 4)), np.ones((4, 4), np.int64))
    pr = np.roll(gt, 1, axis=2)
    j, f = batched_jaccard_and_f_measure(gt, pr, nb_objects=2)
    np.testing.assert_array_equal(j, batched_jaccard(gt, pr, False, nb_objects=2))
    np.testing.assert_array_equal(f, batched_f_measure(gt, pr, False, nb_objects=2))
    np.testing.assert_allclose(batched_j_and_f(gt, pr, nb_objects=2), (0.5 * j + 0.5 * f).mean(axis=1))
    assert batched_j_and_f(gt, pr, nb_objects=2, average_over_objects=False).shape == (3, 2)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("gt", "pr", "match"),
    [
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "y_true must have 3 dimensions"),
        (np.ones((1, 4, 4), np.uint8), np.zeros((1, 4, 5), np.uint8), "same shape"),
        (np.ones((1, 2, 2)), np.full((1, 2, 2), np.nan), "y_pred contains non-finite"),
        (np.ones((1, 2, 2)), np.full((1, 2, 2), 0.5), "integer labels, found 0.5"),
        (np.ones((1, 2, 2), np.uint8), np.full((1, 2, 2), "a"), "dtype <U1"),
        (np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 2), np.uint8), "no object"),
        (np.full((1, 2, 2), 255, np.uint8), np.zeros((1, 2, 2), np.uint8), "no object"),
        (np.zeros((1, 0, 2), np.uint8), np.zeros((1, 0, 2), np.uint8), "non-empty"),
    ],
)
def test_bad_arrays_raise_typed_errors(gt: np.ndarray, pr: np.ndarray, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        batched_jaccard(gt, pr)
    with pytest.raises(IvosError):
        batched_f_measure(gt, pr)


@pytest.mark.parametrize("nb", [0, -1, 1.5, True])
def test_bad_nb_objects(nb: object) -> None:
    gt = np.ones((1, 2, 2), np.uint8)
    with pytest.raises(InputValidationError, match="nb_objects"):
        batched_jaccard(gt, gt, nb_objects=nb)  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "2"])
def test_bad_threads(threads: object) -> None:
    gt = np.ones((1, 2, 2), np.uint8)
    with pytest.raises(InputValidationError, match="threads"):
        batched_jaccard_and_f_measure(gt, gt, threads=threads)  # type: ignore[arg-type]


@pytest.mark.parametrize("bound_th", [-0.1, float("nan"), "x"])
def test_bad_bound_th(bound_th: object) -> None:
    gt = np.ones((1, 2, 2), np.uint8)
    with pytest.raises(InputValidationError, match="bound_th"):
        batched_f_measure(gt, gt, bound_th=bound_th)  # type: ignore[arg-type]


def test_as_label_stack_keeps_integer_arrays_without_copy() -> None:
    a = np.zeros((1, 2, 2), np.uint8)
    assert as_label_stack(a, "x") is a
    assert as_label_stack(np.zeros((1, 2, 2)), "x").dtype == np.int64
