"""Multirun folders are named by job number; overrides live in the folder, not in its name (#17 item 6).

Names built from every override nested folders at each '/' of a value and, with ~16 overrides, hit
"File name too long". A tiny Hydra app using configs/hydra/default.yaml runs such a sweep here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

APP = '''
import hydra
from hydra.core.hydra_config import HydraConfig

from ivos_rl.provenance import write_manifest


@hydra.main(config_path=".", config_name="probe", version_base="1.3")
def main(cfg) -> None:
    write_manifest(HydraConfig.get().runtime.output_dir, kind="probe", fields={"path": cfg.path})


main()
'''


def test_multirun_jobs_get_numbered_folders_and_record_their_overrides(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "probe.yaml").write_text(
        f"defaults:\n  - hydra: default\n  - _self_\nhydra:\n  searchpath:\n    - file://{REPO / 'configs'}\n"
        "path: null\n"
    )
    long = [f"+knob_{i:02d}=a-rather-long-override-value-number-{i:02d}" for i in range(15)]
    cmd = [sys.executable, "app.py", "-m", "path=data/sub/dir,other/dir", *long]
    assert sum(len(o) + 1 for o in cmd[3:]) > 255  # one folder name from them would be too long
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (sweep,) = list((tmp_path / "multirun" / "app").iterdir())
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]  # nothing nested
    for num, value in ((0, "data/sub/dir"), (1, "other/dir")):
        job = sweep / str(num)
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert overrides == [f"path={value}", *long]
        record = json.loads((job / "manifest.json").read_text())["hydra_job"]
        assert record["num"] == num and record["overrides"] == overrides and record["mode"] == "MULTIRUN"
        assert record["output_dir"] == str(job.resolve())


def test_outside_hydra_the_manifest_records_no_job(tmp_path: Path) -> None:
    from ivos_rl.provenance import write_manifest

    assert write_manifest(tmp_path, kind="probe", fields={"x": 1})["hydra_job"] is None
