"""Run manifests and fingerprints: stable, order-free, and refusing to mix different setups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.provenance import (
    ProvenanceError,
    check_fingerprint,
    describe_difference,
    file_sha256,
    fingerprint,
    read_manifest,
    write_manifest,
)
from ivos_rl.utils.seed import name_rng, name_seed


def test_fingerprint_ignores_key_order_and_sees_values() -> None:
    a = fingerprint({"strategy": "worst", "max_rounds": 8, "sequences": ("bear", "dog")})
    b = fingerprint({"sequences": ["bear", "dog"], "max_rounds": np.int64(8), "strategy": "worst"})
    assert a == b and len(a) == 16
    assert fingerprint({"strategy": "worst", "max_rounds": 5, "sequences": ["bear", "dog"]}) != a


def test_manifest_roundtrip_and_mismatch(tmp_path: Path) -> None:
    m = write_manifest(tmp_path, kind="evaluation", fields={"seed": 0}, config={"progress": True})
    assert read_manifest(tmp_path) == json.loads((tmp_path / "manifest.json").read_text()) == m
    check_fingerprint(m["fingerprint"], read_manifest(tmp_path)["fingerprint"], where=tmp_path)
    with pytest.raises(ProvenanceError, match=str(tmp_path)):
        check_fingerprint(fingerprint({"seed": 1}), m["fingerprint"], where=tmp_path)
    assert describe_difference({"seed": 0, "a": 1}, {"seed": 1, "a": 1}) == "seed: 0 != 1"
    assert read_manifest(tmp_path / "nothing") is None


def test_not_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ProvenanceError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_file_hash_follows_content(tmp_path: Path) -> None:
    p = tmp_path / "w.pt"
    p.write_bytes(b"abc")
    h = file_sha256(p)
    p.write_bytes(b"abd")
    assert file_sha256(p) != h
    assert file_sha256(None) is None


def test_name_seed_depends_on_names_only() -> None:
    assert name_seed("dog", 1, 0) == name_seed("dog", 1, 0)
    assert name_seed("dog", 1, 0) != name_seed("dog", 2, 0)
    assert name_seed("do", "g1") != name_seed("dog", "1")  # parts are separated, not concatenated
    assert name_rng("bear", 3).integers(1 << 30) == name_rng("bear", 3).integers(1 << 30)
