"""Latency of a recommendation at 480p with the shipped defaults (the default Wild estimator + the
shipped agent), and of the agent's per-frame state features, on the project's own backend outputs.

Inputs: for each video, the propagation backend's uint8 probabilities after initial scribble 1 on the
shared 240p DAVIS-2016 videos, resized (bilinear) with the frames to 480x854, the DAVIS-Interactive
resolution. Printed per video, CPU milliseconds (best of ``--repeats``, one thread):

* ``entropy``: :func:`ivos_rl.state_features.label_entropy` on the uint8 stack (one object: a 256-entry
  table) and, as the reference, the float formula it replaces (``_pixel_entropy`` on the same stack);
* ``labels``: :func:`ivos_rl.backends.base.labels_from_probs` on the uint8 stack and the float rule it
  replaces (the same stack / 255 as float32);
* ``recommend``: a whole ``Recommender.recommend`` call (estimate + agent) with history [first, last].

Both pairs are checked to give the same bytes. Run: ``OMP_NUM_THREADS=1 python
benchmarks/bench_recommend.py [--videos bear,soccerball] [--repeats 3]`` (needs ../shared/data).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from _realistic import DATA, SCRIBBLES
from bench_metrics import best_time

from ivos_rl.backends.base import labels_from_probs
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.data import DavisDataset
from ivos_rl.recommend import Recommender, shipped_checkpoint, shipped_checkpoints
from ivos_rl.state_features import _pixel_entropy, label_entropy


def backend_probs(dataset: DavisDataset, seq: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames, uint8 probs) at 480x854: the propagation backend after initial scribble 1."""
    frames = dataset.load_frames(seq)
    backend = PropagationBackend()
    backend.reset(frames, dataset.info(seq).n_objects, sequence=seq)
    scribbles = dataset.load_scribbles(seq, 1)
    first = next(t for t, s in enumerate(scribbles["scribbles"]) if s)
    probs = backend.interact(first, scribbles).probs
    big = np.stack([cv2.resize(f, (854, 480), interpolation=cv2.INTER_LINEAR) for f in frames])
    p = np.stack(
        [np.stack([cv2.resize(o, (854, 480), interpolation=cv2.INTER_LINEAR) for o in f]) for f in probs]
    )
    return big, p


def bench_video(rec: Recommender, frames: np.ndarray, probs: np.ndarray, repeats: int) -> dict[str, float]:
    """CPU seconds of each measure on one video (see the module docstring); SystemExit on a byte mismatch."""
    e_new, t_e = best_time(lambda: label_entropy(probs), repeats)

    def reference() -> np.ndarray:
        return (_pixel_entropy(probs).mean(axis=(1, 2)) / np.log(probs.shape[1] + 1)).astype(np.float32)

    e_ref, t_eref = best_time(reference, repeats)
    as_float = probs.astype(np.float32) / 255.0
    l_new, t_l = best_time(lambda: labels_from_probs(probs), repeats)
    l_ref, t_lref = best_time(lambda: labels_from_probs(as_float), repeats)
    if e_new.tobytes() != e_ref.tobytes() or not np.array_equal(l_new, l_ref):
        raise SystemExit("the table paths do not give the reference's bytes")
    history = [0, len(frames) - 1]
    rec.recommend(frames, probs, history)  # warm-up (model load, caches)
    _, t_r = best_time(lambda: rec.recommend(frames, probs, history), repeats)
    return {"entropy": t_e, "entropy_ref": t_eref, "labels": t_l, "labels_ref": t_lref, "recommend": t_r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default="bear,soccerball,dog-agility")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA} (needs ../shared/data/davis2016-train)")
    dataset = DavisDataset(DATA, resolution="240p", image_set="2016/train", scribbles_root=SCRIBBLES)
    agent = shipped_checkpoints("agent")
    rec = Recommender.from_checkpoints(quality=shipped_checkpoint("quality"), agent=agent)
    print("CPU ms, best of", args.repeats, "(1 thread); reference = the float formula replaced")
    for seq in args.videos.split(","):
        frames, probs = backend_probs(dataset, seq)
        t = {k: v * 1e3 for k, v in bench_video(rec, frames, probs, args.repeats).items()}
        print(
            f"{seq:<12} {len(frames):>3} frames 480x854: entropy {t['entropy']:6.1f} (reference "
            f"{t['entropy_ref']:6.1f}, x{t['entropy_ref'] / t['entropy']:.1f}), labels {t['labels']:5.1f} "
            f"(reference {t['labels_ref']:6.1f}, x{t['labels_ref'] / t['labels']:.1f}), recommend "
            f"{t['recommend']:6.1f}; same bytes"
        )


if __name__ == "__main__":
    main()
