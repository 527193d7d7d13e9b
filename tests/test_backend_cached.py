"""CachedBackend: hits and misses, replay after hits, LRU eviction, damaged entries, concurrency."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import BackendOutput, CachedBackend, SimulatedBackend, VOSBackend, check_backend
from ivos_rl.backends.cached import backend_fingerprint, decode_entry, encode_entry
from ivos_rl.errors import BackendError, ConfigError, CorruptFileError, InputValidationError

T, H, W = 6, 24, 32


def make_clip() -> tuple[np.ndarray, np.ndarray]:
    """A 12x10 square moving right 1 px/frame on a textured background."""
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 120, size=(1, H, W, 3), dtype=np.uint8), T, axis=0)
    gt = np.zeros((T, H, W), np.uint8)
    for i in range(T):
        gt[i, 6:18, 4 + i : 14 + i] = 1
        frames[i, 6:18, 4 + i : 14 + i] = (230, 30, 30)
    return frames, gt


def scribble(frame: int, obj: int = 1, dx: int = 0) -> dict[str, Any]:
    """A one-stroke round on ``frame`` inside the square (``dx`` shifts it)."""
    x = 6 + frame + dx
    strokes = [{"path": [[x / (W - 1), 9 / (H - 1)], [(x + 4) / (W - 1), 14 / (H - 1)]], "object_id": obj}]
    return {"scribbles": [strokes if t == frame else [] for t in range(T)], "sequence": "clip"}


class Counting(VOSBackend):
    """Wraps a simulator and records every call, to observe what the cache forwards."""

    uses_ground_truth = True

    def __init__(self, seed: int = 0, fail_on: int | None = None) -> None:
        self.inner = SimulatedBackend(seed=seed)
        self.calls: list[tuple[str, int]] = []
        self.fail_on = fail_on

    def reset(self, frames: np.ndarray, n_objects: int, *, sequence: str | None = None,
              gt_masks: np.ndarray | None = None) -> None:
        self.calls.append(("reset", -1))
        self.inner.reset(frames, n_objects, sequence=sequence, gt_masks=gt_masks)

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        self.calls.append(("interact", frame_idx))
        if frame_idx == self.fail_on:
            raise BackendError(f"simulated failure on frame {frame_idx}")
        return self.inner.interact(frame_idx, interaction)


Rounds = list[tuple[int, dict[str, Any]]]


def run(backend: VOSBackend, rounds: Rounds, seq: str = "clip") -> list[BackendOutput]:
    frames, gt = make_clip()
    backend.reset(frames, 1, sequence=seq, gt_masks=gt)
    return [backend.interact(f, r) for f, r in rounds]


ROUNDS = [(0, scribble(0)), (5, scribble(5)), (2, scribble(2))]


def same(a: list[BackendOutput], b: list[BackendOutput]) -> bool:
    pairs = zip(a, b, strict=True)
    return all(np.array_equal(x.probs, y.probs) and np.array_equal(x.masks, y.masks) for x, y in pairs)


def test_check_backend_passes_for_cached_simulator(tmp_path: Path) -> None:
    frames, gt = make_clip()
    cached = CachedBackend(SimulatedBackend(seed=1), tmp_path / "cache")
    check_backend(cached, frames, gt, 1, interactions=ROUNDS)
    assert cached.stats["hits"] == 3  # the determinism re-run is served from disk
    assert cached.uses_ground_truth and not cached.wants_all_scribbles


def test_hit_and_miss_without_touching_the_backend(tmp_path: Path) -> None:
    first = Counting()
    out1 = run(CachedBackend(first, tmp_path, backend_key="k"), ROUNDS)
    assert first.calls == [("reset", -1), ("interact", 0), ("interact", 5), ("interact", 2)]
    second = Counting()
    cached2 = CachedBackend(second, tmp_path, backend_key="k")
    out2 = run(cached2, ROUNDS)
    assert second.calls == []  # everything came from disk; the backend was not even reset
    assert cached2.stats["hits"] == 3 and cached2.stats["misses"] == 0
    assert same(out1, out2)
    assert same(out1, run(SimulatedBackend(seed=0), ROUNDS))  # and equals an uncached run


def test_miss_after_hits_replays_the_history(tmp_path: Path) -> None:
    run(CachedBackend(Counting(), tmp_path, backend_key="k"), ROUNDS[:2])
    inner = Counting()
    cached = CachedBackend(inner, tmp_path, backend_key="k")
    rounds = [*ROUNDS[:2], (3, scribble(3))]  # third round is new
    out = run(cached, rounds)
    assert cached.stats == {"hits": 2, "misses": 1, "replayed": 2, "evicted": 0, "corrupt": 0}
    assert inner.calls == [("reset", -1), ("interact", 0), ("interact", 5), ("interact", 3)]
    assert same(out, run(SimulatedBackend(seed=0), rounds))
    # a further miss does not replay again: the wrapped backend is in sync
    cached.interact(4, scribble(4))
    assert inner.calls[-1] == ("interact", 4) and cached.stats["replayed"] == 2


def test_fork_continues_on_its_own_and_shares_the_disk_cache(tmp_path: Path) -> None:
    inner = Counting()
    cached = CachedBackend(inner, tmp_path, backend_key="k")
    run(cached, ROUNDS[:2])
    fork = cached.fork()
    assert fork.backend is not inner and fork.cache_dir == cached.cache_dir
    from_fork = fork.interact(3, scribble(3))  # a miss, computed on the fork's own backend
    assert fork.stats["misses"] == 3 and cached.stats["misses"] == 2
    assert inner.calls == [("reset", -1), ("interact", 0), ("interact", 5)]  # untouched
    assert len(cached._sample["history"]) == 2 and len(fork._sample["history"]) == 3
    from_original = cached.interact(3, scribble(3))  # the same round: the fork's entry on disk
    assert cached.stats["hits"] == 1 and inner.calls[-1] == ("interact", 5)
    assert same([from_fork], [from_original])
    assert same([from_fork], run(SimulatedBackend(seed=0), [*ROUNDS[:2], (3, scribble(3))])[-1:])


def test_key_covers_sequence_interaction_and_backend_config(tmp_path: Path) -> None:
    run(CachedBackend(SimulatedBackend(seed=0), tmp_path), ROUNDS[:1])
    for backend, rounds, seq in [
        (SimulatedBackend(seed=1), ROUNDS[:1], "clip"),  # other config
        (SimulatedBackend(seed=0), [(0, scribble(0, dx=1))], "clip"),  # other strokes
        (SimulatedBackend(seed=0), ROUNDS[:1], "other"),  # other sequence name
    ]:
        cached = CachedBackend(backend, tmp_path)
        run(cached, rounds, seq)
        assert cached.stats["misses"] == 1 and cached.stats["hits"] == 0
    frames, gt = make_clip()
    cached = CachedBackend(SimulatedBackend(seed=0), tmp_path)
    cached.reset(frames[::-1].copy(), 1, sequence="clip", gt_masks=gt[::-1].copy())  # other content
    cached.interact(0, scribble(0))
    assert cached.stats["misses"] == 1


def test_fingerprint_lists_scalar_configuration() -> None:
    fp = backend_fingerprint(SimulatedBackend(seed=7, drift=0.5))
    assert '"seed": 7' in fp and '"drift": 0.5' in fp and "SimulatedBackend" in fp
    assert backend_fingerprint(SimulatedBackend(seed=7)) != backend_fingerprint(SimulatedBackend(seed=8))


def entry_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ivc"))


def test_lru_eviction_keeps_recently_used_entries(tmp_path: Path) -> None:
    probe = CachedBackend(SimulatedBackend(), tmp_path / "probe")
    run(probe, ROUNDS[:1])
    size = entry_files(tmp_path / "probe")[0].stat().st_size
    root = tmp_path / "lru"
    cached = CachedBackend(SimulatedBackend(), root, max_bytes=int(size * 2.5))
    run(cached, ROUNDS[:2])  # entries A (round 1) and B (round 2)
    a, b = sorted(entry_files(root), key=lambda p: p.stat().st_mtime_ns)
    os.utime(a, (1_000, 1_000))
    os.utime(b, (2_000, 2_000))
    run(cached, ROUNDS[:1])  # hit on A refreshes its mtime: B is now the least recently used
    assert cached.stats["hits"] == 1
    cached.interact(1, scribble(1))  # entry C pushes the total over 2.5 entries
    left = entry_files(root)
    assert cached.stats["evicted"] == 1
    assert a in left and b not in left and len(left) == 2
    assert cached.cache_bytes() <= cached.max_bytes


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other_key"])
def test_damaged_entry_is_deleted_and_recomputed(tmp_path: Path, damage: str) -> None:
    good = run(CachedBackend(SimulatedBackend(), tmp_path), ROUNDS)
    files = entry_files(tmp_path)
    victim = max(files, key=lambda p: p.stat().st_mtime_ns)  # the last round's entry
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        victim.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "garbage":
        victim.write_bytes(b"not a cache entry")
    else:
        victim.write_bytes(files[0].read_bytes() if files[0] != victim else files[1].read_bytes())
    inner = Counting()
    cached = CachedBackend(inner, tmp_path, backend_key=backend_fingerprint(SimulatedBackend()))
    out = run(cached, ROUNDS)
    assert cached.stats["corrupt"] == 1 and cached.stats["misses"] == 1 and cached.stats["hits"] == 2
    assert same(out, good)  # recomputed, never served from the damaged file
    assert decode_entry(victim.read_bytes(), victim.stem).probs.shape == (T, 1, H, W)  # rewritten


def test_entry_codec_round_trip_and_checks() -> None:
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 256, size=(3, 2, 5, 7), dtype=np.uint8)
    masks = rng.integers(0, 3, size=(3, 5, 7), dtype=np.uint8)
    blob = encode_entry("abc", BackendOutput(probs=probs, masks=masks))
    back = decode_entry(blob, "abc")
    np.testing.assert_array_equal(back.probs, probs)
    np.testing.assert_array_equal(back.masks, masks)
    with pytest.raises(CorruptFileError, match="belongs to key"):
        decode_entry(blob, "abd")
    with pytest.raises(CorruptFileError, match="checksum"):
        decode_entry(blob[:-1] + bytes([blob[-1] ^ 1]), "abc")


def test_failure_of_the_wrapped_backend_is_not_cached_and_resyncs(tmp_path: Path) -> None:
    inner = Counting(fail_on=5)
    cached = CachedBackend(inner, tmp_path, backend_key="k")
    frames, gt = make_clip()
    cached.reset(frames, 1, sequence="clip", gt_masks=gt)
    cached.interact(0, scribble(0))
    with pytest.raises(BackendError, match="simulated failure"):
        cached.interact(5, scribble(5))
    assert len(entry_files(tmp_path)) == 1
    inner.fail_on = None
    out = cached.interact(2, scribble(2))  # history is [0] then 2: reset + replay of round 0
    assert inner.calls[-3:] == [("reset", -1), ("interact", 0), ("interact", 2)]
    assert same([out], run(SimulatedBackend(seed=0), [(0, scribble(0)), (2, scribble(2))])[1:])


def test_bad_input_raises_even_when_entries_exist(tmp_path: Path) -> None:
    run(CachedBackend(SimulatedBackend(), tmp_path), ROUNDS)
    cached = CachedBackend(SimulatedBackend(), tmp_path)
    with pytest.raises(BackendError, match="before reset"):
        cached.interact(0, scribble(0))
    frames, gt = make_clip()
    with pytest.raises(BackendError, match="gt_masks"):
        cached.reset(frames, 1, sequence="clip")
    cached.reset(frames, 1, sequence="clip", gt_masks=gt)
    with pytest.raises(InputValidationError, match="frame_idx=6"):
        cached.interact(6, scribble(0))
    cached.interact(0, scribble(0))
    assert cached.stats["hits"] == 1  # the refused call did not enter the history
    with pytest.raises(ConfigError, match="max_bytes"):
        CachedBackend(SimulatedBackend(), tmp_path, max_bytes=0)
    with pytest.raises(ConfigError, match="wraps a VOSBackend"):
        CachedBackend("simulated", tmp_path)  # type: ignore[arg-type]


def test_concurrent_readers_never_see_partial_entries(tmp_path: Path) -> None:
    writer = CachedBackend(SimulatedBackend(), tmp_path)
    run(writer, ROUNDS[:1])
    errors: list[BaseException] = []
    stop = threading.Event()

    def rewrite() -> None:  # another process storing the same key over and over
        frames, gt = make_clip()
        sim = SimulatedBackend()
        sim.reset(frames, 1, sequence="clip", gt_masks=gt)
        out = sim.interact(0, scribble(0))
        while not stop.is_set():
            writer._store(writer._sample["chain"], out)  # type: ignore[index]

    def read() -> None:
        try:
            for _ in range(30):
                reader = CachedBackend(SimulatedBackend(), tmp_path)
                run(reader, ROUNDS[:1])
                assert reader.stats["corrupt"] == 0 and reader.stats["hits"] == 1
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    t_w = threading.Thread(target=rewrite)
    readers = [threading.Thread(target=read) for _ in range(2)]
    t_w.start()
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    stop.set()
    t_w.join()
    assert not errors, errors
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary file behind


def test_cached_simulator_on_a_real_davis_excerpt(davis_excerpt_root: Path, tmp_path: Path) -> None:
    """Real 240p video and masks, scribbles from the robot: the contract holds, the re-run hits."""
    from ivos_rl.data.davis import DavisDataset

    ds = DavisDataset(davis_excerpt_root, resolution="240p", image_set="2016/train")
    frames, gt = ds.load_frames("bear"), ds.load_masks("bear")
    cached = CachedBackend(SimulatedBackend(seed=0), tmp_path)
    outs = check_backend(cached, frames, gt, 1, n_rounds=2, sequence="bear")
    assert outs[0].probs.shape == (10, 1, 240, 427)
    assert cached.stats["misses"] == len(outs) and cached.stats["hits"] == len(outs)


def test_numpy_values_in_interactions_hash_like_plain_ones(tmp_path: Path) -> None:
    run(CachedBackend(SimulatedBackend(), tmp_path), ROUNDS[:1])
    numpy_round = scribble(0)
    stroke = numpy_round["scribbles"][0][0]
    stroke["object_id"] = np.int64(1)
    stroke["path"] = np.asarray(stroke["path"])
    cached = CachedBackend(SimulatedBackend(), tmp_path)
    run(cached, [(0, numpy_round)])
    assert cached.stats["hits"] == 1
