"""Safe outputs: atomic writes and the writable-folder check that runs before any compute."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivos_rl.errors import IvosError, OutputError
from ivos_rl.utils.io import atomic_write_json, ensure_writable_dir


def test_ensure_writable_dir_creates_nested_folder_and_leaves_it_empty(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert ensure_writable_dir(out) == out
    assert out.is_dir()
    assert list(out.iterdir()) == []  # the probe file is removed


def test_ensure_writable_dir_keeps_existing_content(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    ensure_writable_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_ensure_writable_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    f = tmp_path / "out"
    f.write_text("not a folder")
    with pytest.raises(OutputError, match="not a folder") as exc:
        ensure_writable_dir(f)
    assert str(f) in str(exc.value)
    with pytest.raises(OutputError, match="cannot create") as exc:
        ensure_writable_dir(f / "sub")
    assert isinstance(exc.value, IvosError) and isinstance(exc.value, OSError)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_ensure_writable_dir_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable") as exc:
            ensure_writable_dir(ro)
        assert str(ro) in str(exc.value)
        with pytest.raises(OutputError, match="cannot create"):
            ensure_writable_dir(ro / "sub")
    finally:
        ro.chmod(0o755)
