"""Disk memoisation of any backend's outputs, keyed by the full interaction history.

RL episodes and baseline runs replay the same (sequence, first scribble, annotated frames)
prefixes over and over; a real backend costs seconds per round, a cache hit milliseconds.

Key: SHA-256 chained over the wrapped backend's identity (class and scalar configuration, or
an explicit ``backend_key``), the sequence name, a hash of the frames' bytes, ``n_objects``,
the ground truth's hash when the backend reads it (simulators), and every
``(frame_idx, canonical JSON of the interaction)`` so far, in order. The robot seed and the first
scribble are thus part of the key through the interactions they produced.

Entry format (one file per key, ``<cache_dir>/<key[:2]>/<key>.ivc``): a magic line, a JSON
header (key, shapes, payload length, payload SHA-256, the output's ``changed_frames`` and
``diagnostics``) and a zlib-compressed payload of the uint8 probabilities and label masks. Files
are written with an atomic rename, so a concurrent reader sees either nothing or a complete file; a
damaged entry (truncated, wrong checksum, wrong key or shape) is deleted and recomputed, never trusted.

Size bound: after each write, if the entries under ``cache_dir`` exceed ``max_bytes`` the least
recently used ones are deleted (a hit refreshes the file's mtime, so mtime is the access time).
The running total is rescanned from disk when it crosses the bound, so writes by other
processes are accounted for then.

Replay: a hit does not advance the wrapped backend (it is not even reset until needed). On a
miss the wrapper brings it in sync first, resetting it and replaying the interactions it has
not seen, so its output equals the output of an uncached run with the same history.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.backends.base import (
    BackendOutput,
    VOSBackend,
    fork_backend,
    validate_frames,
    validate_interaction,
    validate_n_objects,
)
from ivos_rl.backends.registry import register_backend
from ivos_rl.errors import BackendError, ConfigError, CorruptFileError
from ivos_rl.utils.io import atomic_write_bytes
from ivos_rl.utils.logging import get_logger

__all__ = ["CachedBackend", "backend_fingerprint"]

_LOG = get_logger(__name__)
_MAGIC = b"IVOSRL-BACKEND-CACHE-1\n"
_SUFFIX = ".ivc"
_STALE_TMP_S = 3600.0


def backend_fingerprint(backend: VOSBackend) -> str:
    """Stable identity of a backend: class path, its ``version`` and its public scalar attributes.

    Public attributes that are numbers, strings, booleans, None or flat lists/tuples of those are
    taken as configuration (the built-in backends store their constructor arguments that way).
    A backend may add more through a ``fingerprint_extra()`` method (a JSON-able dict; the
    propagation backend's non-default ``seg``/``prop`` parameters, which live in dataclasses).
    A backend whose behaviour depends on anything else (weights in memory...) must be given an
    explicit ``backend_key`` by the caller.
    """
    scalar = (int, float, str, bool, type(None))
    config: dict[str, Any] = {}
    for name, value in sorted(vars(backend).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, scalar):
            config[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value):
            config[name] = list(value)
    extra = getattr(backend, "fingerprint_extra", None)
    if callable(extra):
        config.update(extra())
    cls = type(backend)
    identity: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}", "config": config}
    version = getattr(backend, "version", None)
    if version is not None:  # backends that declare no version keep their earlier fingerprints
        identity["version"] = str(version)
    return json.dumps(identity, sort_keys=True)


def _digest(*parts: bytes) -> str:
    """SHA-256 hex digest of length-prefixed parts (no ambiguity between part boundaries)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    """JSON form of numpy scalars and arrays (robots may emit ``np.int64`` ids or array paths)."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _array_digest(arr: np.ndarray) -> bytes:
    """Hash of an array's dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=32)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).data)
    return h.digest()


def encode_entry(key: str, output: BackendOutput, level: int = 1) -> bytes:
    """Serialise ``output`` for ``key`` (header + checksummed zlib payload)."""
    probs = np.ascontiguousarray(output.probs)
    masks = np.ascontiguousarray(output.masks)
    payload = zlib.compress(probs.tobytes() + masks.tobytes(), level)
    header = {
        "key": key,
        "probs_shape": list(probs.shape),
        "masks_shape": list(masks.shape),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        # Relative to the previous round of the same history, which is part of the key.
        "changed_frames": None if output.changed_frames is None else list(output.changed_frames),
        # Small (T x K per name); float32 values survive the JSON round trip exactly.
        "diagnostics": None if output.diagnostics is None
        else {name: arr.tolist() for name, arr in output.diagnostics.items()},
    }
    head = json.dumps(header, sort_keys=True).encode()
    return _MAGIC + len(head).to_bytes(4, "little") + head + payload


def decode_entry(data: bytes, key: str, path: Path | None = None) -> BackendOutput:
    """Parse and verify an entry; :class:`CorruptFileError` on any inconsistency."""

    def bad(reason: str) -> CorruptFileError:
        return CorruptFileError(f"damaged backend cache entry: {reason}", path)

    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise bad("missing magic header")
    pos = len(_MAGIC)
    n_head = int.from_bytes(data[pos : pos + 4], "little")
    pos += 4
    try:
        header = json.loads(data[pos : pos + n_head].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"unreadable header ({exc})") from exc
    if not isinstance(header, dict):
        raise bad("header is not an object")
    payload = data[pos + n_head :]
    if header.get("key") != key:
        raise bad(f"entry belongs to key {header.get('key')!r}")
    if header.get("payload_bytes") != len(payload):
        raise bad(f"payload has {len(payload)} bytes, header says {header.get('payload_bytes')}")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise bad("payload checksum mismatch")
    try:
        raw = zlib.decompress(payload)
        p_shape = tuple(int(v) for v in header["probs_shape"])
        m_shape = tuple(int(v) for v in header["masks_shape"])
    except (zlib.error, KeyError, TypeError, ValueError) as exc:
        raise bad(f"cannot decode payload ({exc})") from exc
    n_p, n_m = int(np.prod(p_shape)), int(np.prod(m_shape))
    if len(p_shape) != 4 or len(m_shape) != 3 or len(raw) != n_p + n_m:
        raise bad(f"payload size {len(raw)} does not match shapes {p_shape} and {m_shape}")
    probs = np.frombuffer(raw, np.uint8, count=n_p).reshape(p_shape).copy()
    masks = np.frombuffer(raw, np.uint8, count=n_m, offset=n_p).reshape(m_shape).copy()
    changed = header.get("changed_frames")  # absent in entries written before the field existed
    if changed is not None and not isinstance(changed, list):
        raise bad(f"changed_frames is {type(changed).__name__}, expected a list")
    diag = header.get("diagnostics")  # absent in entries written before the field existed
    if diag is not None and not isinstance(diag, dict):
        raise bad(f"diagnostics is {type(diag).__name__}, expected an object")
    try:
        diagnostics = None if diag is None else {str(k): np.asarray(v, np.float32) for k, v in diag.items()}
        return BackendOutput(
            probs=probs, masks=masks, changed_frames=None if changed is None else tuple(changed),
            diagnostics=diagnostics,
        )
    except (BackendError, TypeError, ValueError) as exc:
        raise bad(str(exc)) from exc


@register_backend("cached")
class CachedBackend(VOSBackend):
    """Wrap ``backend`` and memoise its outputs on disk (see the module docstring)."""

    def __init__(
        self,
        backend: VOSBackend,
        cache_dir: str | Path,
        max_bytes: int = 2 * 1024**3,
        backend_key: str | None = None,
        compression_level: int = 1,
    ) -> None:
        if not isinstance(backend, VOSBackend):
            raise ConfigError(f"CachedBackend wraps a VOSBackend, got {type(backend).__name__}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
            raise ConfigError(f"CachedBackend max_bytes must be a positive integer, got {max_bytes!r}")
        if not isinstance(compression_level, int) or not 0 <= compression_level <= 9:
            raise ConfigError(f"CachedBackend compression_level must be 0..9, got {compression_level!r}")
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.max_bytes = int(max_bytes)
        self.compression_level = compression_level
        self.backend_key = backend_key if backend_key is not None else backend_fingerprint(backend)
        # Mirror what the wrapped backend consumes so callers prepare the same interactions.
        self.wants_all_scribbles = backend.wants_all_scribbles  # type: ignore[misc]
        self.accepts_clicks = backend.accepts_clicks  # type: ignore[misc]
        self.uses_ground_truth = backend.uses_ground_truth  # type: ignore[misc]
        self.stats = {"hits": 0, "misses": 0, "replayed": 0, "evicted": 0, "corrupt": 0}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create cache_dir {self.cache_dir}: {exc}") from exc
        self._size_estimate = self._scan()[1]
        self._sample: dict[str, Any] | None = None

    # ------------------------------------------------------------------ protocol
    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Start a sample; the wrapped backend is only reset when a cache miss needs it."""
        self._sample = None
        frames = validate_frames(frames)
        k = validate_n_objects(n_objects)
        gt_part = b""
        if self.backend.uses_ground_truth:
            if gt_masks is None:
                raise BackendError(f"{type(self.backend).__name__} needs gt_masks; none given to reset")
            gt_part = _array_digest(np.asarray(gt_masks))
        root = _digest(
            self.backend_key.encode(),
            (sequence or "").encode(),
            _array_digest(frames),
            str(k).encode(),
            gt_part,
        )
        self._sample = {
            "frames": frames,
            "n_objects": k,
            "sequence": sequence,
            "gt_masks": gt_masks,
            "chain": root,
            "history": [],
        }
        # Interactions the wrapped backend has applied since its reset; None = not reset for this sample.
        self._inner_synced: int | None = None

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Serve the output for the history plus this interaction, computing it on a miss."""
        if self._sample is None:
            raise BackendError("CachedBackend.interact called before reset")
        s = self._sample
        t = s["frames"].shape[0]
        validate_interaction(frame_idx, interaction, t, s["n_objects"])
        frame_idx = int(frame_idx)
        try:
            canonical = json.dumps(
                interaction, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
            )
        except (TypeError, ValueError) as exc:
            raise BackendError(f"interaction on frame {frame_idx} is not JSON-serialisable: {exc}") from exc
        key = _digest(s["chain"].encode(), str(frame_idx).encode(), canonical.encode())
        output = self._load(key)
        if output is None:
            output = self._compute(frame_idx, interaction)
            self._store(key, output)
        else:
            self.stats["hits"] += 1
        s["chain"] = key
        s["history"].append((frame_idx, interaction))
        return output

    def close(self) -> None:
        """Close the wrapped backend."""
        self.backend.close()

    def fork(self) -> CachedBackend:
        """An independent copy on the same disk cache: the wrapped backend forked with
        :func:`fork_backend` (cheap where it defines ``fork``), the history and counters copied."""
        clone = copy.copy(self)
        clone.backend = fork_backend(self.backend)
        clone.stats = dict(self.stats)
        if self._sample is not None:
            clone._sample = {**self._sample, "history": list(self._sample["history"])}
        return clone

    # ------------------------------------------------------------------ miss path
    def sync(self) -> None:
        """Bring the wrapped backend in line with the history, replaying the rounds hits skipped.

        Called on every miss; call it before copying this backend (``RoundEngine.lookahead`` forks
        it once per candidate) so that the copies do not each replay the same rounds.
        """
        s = self._sample
        if s is None:
            raise BackendError("CachedBackend.sync called before reset")
        history = s["history"]
        if self._inner_synced is None or self._inner_synced > len(history):
            self.backend.reset(
                s["frames"], s["n_objects"], sequence=s["sequence"], gt_masks=s["gt_masks"]
            )
            self._inner_synced = 0
        try:
            for past_idx, past in history[self._inner_synced :]:
                self.backend.interact(past_idx, past)
                self._inner_synced += 1
                self.stats["replayed"] += 1
        except BaseException:
            self._inner_synced = None  # unknown inner state: reset and replay next time
            raise

    def _compute(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Bring the wrapped backend in sync with the history, then run this interaction."""
        s = self._sample
        assert s is not None
        self.stats["misses"] += 1
        history = s["history"]
        self.sync()
        try:
            output = self.backend.interact(frame_idx, interaction)
        except BaseException:
            self._inner_synced = None  # unknown inner state: reset and replay next time
            raise
        if not isinstance(output, BackendOutput):
            self._inner_synced = None
            raise BackendError(f"{type(self.backend).__name__}.interact returned {type(output).__name__}")
        self._inner_synced = len(history) + 1
        return output

    # ------------------------------------------------------------------ disk
    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}{_SUFFIX}"

    def _load(self, key: str) -> BackendOutput | None:
        """The verified entry for ``key``, or None (absent or damaged, in which case it is deleted)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            output = decode_entry(data, key, path)
            s = self._sample
            assert s is not None
            t, h, w = s["frames"].shape[:3]
            if output.probs.shape != (t, s["n_objects"], h, w):
                raise CorruptFileError(
                    f"cached output shape {output.probs.shape} does not fit the sample", path
                )
        except CorruptFileError as exc:
            self.stats["corrupt"] += 1
            _LOG.warning("%s; deleting it and recomputing", exc)
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # LRU: mtime is the last access time
        except FileNotFoundError:
            pass  # evicted by another process in between; the data read is complete and verified
        return output

    def _store(self, key: str, output: BackendOutput) -> None:
        """Write the entry atomically, then evict least recently used entries beyond ``max_bytes``."""
        data = encode_entry(key, output, self.compression_level)
        path = self._path(key)
        atomic_write_bytes(path, data)
        self._size_estimate += len(data)
        if self._size_estimate > self.max_bytes:
            self._evict(keep=path)

    def _scan(self) -> tuple[list[tuple[float, int, Path]], int]:
        """Entries as (mtime, size, path) and their total size; removes stale temp files."""
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        for sub in self.cache_dir.iterdir() if self.cache_dir.is_dir() else []:
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue
                if f.name.endswith(_SUFFIX) and not f.name.startswith("."):
                    entries.append((st.st_mtime, st.st_size, f))
                elif f.name.endswith(".tmp") and now - st.st_mtime > _STALE_TMP_S:
                    f.unlink(missing_ok=True)  # left by a writer that crashed mid-write
        return entries, sum(e[1] for e in entries)

    def _evict(self, keep: Path | None = None) -> None:
        """Delete least recently used entries until the total fits ``max_bytes``."""
        entries, total = self._scan()
        entries.sort(key=lambda e: (e[0], e[2].name))
        for _, size, f in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and f == keep:
                continue
            f.unlink(missing_ok=True)
            total -= size
            self.stats["evicted"] += 1
        self._size_estimate = total

    def cache_bytes(self) -> int:
        """Current total size of the entries on disk."""
        return self._scan()[1]
