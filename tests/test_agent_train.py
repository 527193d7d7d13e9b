"""End-to-end training on synthetic data with the simulated backend; SIGKILL + resume equivalence."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from ivos_rl.agents.checkpoint import load_policy, load_training_checkpoint
from ivos_rl.agents.config import HydraJob
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.agents.train import train
from ivos_rl.errors import CheckpointError, ConfigError, OutputError
from ivos_rl.provenance import ProvenanceError, read_manifest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHARED_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def tiny_config(dataset_root: Path, out_dir: Path, baseline: Path, *extra: str) -> DictConfig:
    """The shared smoke config (``+debug=tiny``) on the session's synthetic dataset."""
    overrides = [
        "+debug=tiny",
        f"dataset.root='{dataset_root}'",  # conftest's SYNTHETIC_PARAMS equal debug/tiny's dataset
        f"paths.output_dir='{out_dir}'",
        f"baseline.path='{baseline}'",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train_agent", overrides=overrides)


@pytest.fixture(scope="module")
def baseline_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("baseline") / "random_baseline.json"


@pytest.fixture(scope="module")
def reference_run(
    synthetic_root: Path, baseline_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    out = tmp_path_factory.mktemp("run_full")
    result = train(tiny_config(synthetic_root, out, baseline_path))
    return {"result": result, "out": out}


def _event_tags(log_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for f in log_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def test_tiny_training_run_end_to_end(reference_run: dict, baseline_path: Path) -> None:
    result, out = reference_run["result"], reference_run["out"]
    assert result["global_step"] == 90 and result["episode"] == 30
    assert result["agent_step"] == 90 - 4 * 3  # warm-up steps do not advance epsilon
    assert result["val_sequences"] and set(result["val_sequences"]).isdisjoint(result["train_sequences"])
    for key in ("agent", "random", "worst"):
        assert 0.0 < result["eval"][key] < 1.0
    # every reset and step asks the transition cache once: 30 episodes x (1 reset + 3 steps)
    assert result["cache_hits"] + result["cache_misses"] == 30 * (1 + 3) and result["cache_hits"] > 0
    assert 0.0 < result["seconds_env"] and 0.0 < result["seconds_learn"]
    assert result["seconds_env"] + result["seconds_learn"] < result["seconds"] and result["cpu_seconds"] > 0.0
    assert torch.isfinite(torch.tensor(result["loss"]))
    assert baseline_path.is_file()
    qnet, meta = load_policy(result["policy"], state_mode="both")
    assert meta["horizon"] == 3 and meta["qnet"]["hidden"] == 32
    assert qnet(torch.rand(1, 11, 2)).shape == (1, 11)  # length-agnostic
    with pytest.raises(CheckpointError, match="state_mode"):
        load_policy(result["policy"], state_mode="q_only")
    tags = _event_tags(out / "tensorboard")
    assert {
        "train/loss", "train/epsilon", "train/episode_return", "train/goal_reward", "train/jf_final",
        "eval/auc_rounds", "eval/auc_rounds_random", "eval/auc_rounds_worst",
    } <= tags


def test_resume_refuses_another_configuration(
    reference_run: dict, synthetic_root: Path, baseline_path: Path
) -> None:
    out = reference_run["out"]
    stored = read_manifest(out)
    assert stored is not None
    cfg = tiny_config(synthetic_root, out, baseline_path, "agent.qnet.hidden=16", "train.resume=auto")
    with pytest.raises(ProvenanceError) as err:
        train(cfg)
    msg = str(err.value)
    assert stored["fingerprint"] in msg and str(out) in msg and "agent" in msg
    assert read_manifest(out) == stored  # the refused run wrote nothing


def _learner_state(checkpoint: str | Path) -> dict[str, Any]:
    return load_training_checkpoint(Path(checkpoint))["state"]["learner"]


def _assert_same_weights(a: dict[str, Any], b: dict[str, Any]) -> None:
    for part in ("policy", "target"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs after resume"
    assert a["steps"] == b["steps"]


def test_stop_and_resume_gives_identical_weights(
    reference_run: dict, synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    """Half a run, then a resumed second half, equals one uninterrupted run (in-process)."""
    first = train(tiny_config(synthetic_root, tmp_path, baseline_path, "train.total_steps=45", "~logger"))
    assert first["global_step"] == 45
    second = train(tiny_config(synthetic_root, tmp_path, baseline_path, "train.resume=auto", "~logger"))
    assert second["global_step"] == 90 and second["episode"] == 30
    assert second["eval"] == pytest.approx(reference_run["result"]["eval"])
    full = _learner_state(reference_run["result"]["checkpoint"])
    _assert_same_weights(full, _learner_state(second["checkpoint"]))


def _child_script(cfg: dict[str, Any], path: Path) -> list[str]:
    path.write_text(json.dumps(cfg))
    code = "import json, sys; from ivos_rl.agents.train import train; train(json.load(open(sys.argv[1])))"
    return [sys.executable, "-c", code, str(path)]


@pytest.mark.slow  # ~10 s: the killed child process pays the torch/hydra import
def test_sigkill_and_resume_gives_identical_weights(
    reference_run: dict, synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run_killed"
    cfg = tiny_config(synthetic_root, out, baseline_path, "train.resume=auto", "~logger")
    plain = OmegaConf.to_container(cfg, resolve=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(_child_script(plain, tmp_path / "cfg.json"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    at_kill = load_training_checkpoint(ckpt)["state"]["counters"]
    assert 0 < at_kill["global_step"] < 90  # killed mid-run, after a checkpoint

    resumed = train(cfg)
    assert resumed["global_step"] == 90
    assert resumed["eval"] == pytest.approx(reference_run["result"]["eval"])
    _assert_same_weights(_learner_state(reference_run["result"]["checkpoint"]), _learner_state(ckpt))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DAVIS.is_dir(), reason="shared DAVIS-2016 train data not available")
def test_short_training_on_real_data_with_propagation_backend(tmp_path: Path) -> None:
    """A few episodes on 3 real DAVIS sequences with the real CPU backend and the robot."""
    from ivos_rl.data.init_scribbles import write_initial_scribbles

    seqs = ["dog-agility", "motorbike", "rollerblade"]  # the shortest ones (25, 43, 35 frames)
    scribbles = tmp_path / "scribbles"
    write_initial_scribbles(SHARED_DAVIS, resolution="240p", n_variants=1, sequences=seqs, out_dir=scribbles)
    overrides = [
        "~dataset",
        f"+dataset={{_target_:ivos_rl.data.DavisDataset,root:'{SHARED_DAVIS}',resolution:240p,"
        f"sequences:[{','.join(seqs)}],scribbles_root:'{scribbles}'}}",
        "~backend",
        "+backend={_target_:ivos_rl.backends.propagation.PropagationBackend}",
        f"paths.output_dir='{tmp_path / 'run'}'",  # tmp_path holds the scribbles: not an empty folder
        f"baseline.path='{tmp_path / 'baseline.json'}'",
        "baseline.progress=false",
        "env.horizon=2",
        "env.subsequence_length=12",
        "env.transition_cache=1000",
        "eval_env.horizon=2",
        "train.total_steps=12",
        "train.warmup_episodes=2",
        "train.eval_every=3",
        "train.checkpoint_every=3",
        "train.val_sequences=[dog-agility]",
        "train.max_val_samples=1",
        "agent.batch_size=4",
        "train.progress=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train_agent", overrides=overrides)
    result = train(cfg)
    assert result["global_step"] == 12 and 0.0 < result["eval"]["agent"] < 1.0
    assert result["val_sequences"] == ["dog-agility"]


def test_run_records_split_backend_and_manifest(reference_run: dict) -> None:
    result, out = reference_run["result"], reference_run["out"]
    _, meta = load_policy(result["policy"])
    assert meta["train_sequences"] == ["synthetic-000", "synthetic-002"]
    assert meta["held_out_sequences"] == ["synthetic-001"]
    # the same 'split' record the quality net writes, read back by the agent's strategy
    split = {"train": ["synthetic-000", "synthetic-002"], "held_out": ["synthetic-001"], "seed": None}
    assert meta["split"] == split and AgentStrategy.from_checkpoint(result["policy"]).split == split
    assert "SimulatedBackend" in meta["backend_fingerprint"]
    ck_meta = load_training_checkpoint(Path(result["checkpoint"]))["meta"]  # checked again on resume
    assert ck_meta["held_out_sequences"] == ["synthetic-001"]
    assert ck_meta["backend_fingerprint"] == meta["backend_fingerprint"]
    manifest = read_manifest(out)
    assert manifest is not None and manifest["kind"] == "train_agent"
    assert manifest["fields"]["held_out_sequences"] == ["synthetic-001"]
    assert manifest["fields"]["backend"] == meta["backend_fingerprint"]


def test_non_empty_output_dir_is_refused_before_any_compute(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    baseline = tmp_path / "baseline.json"
    with pytest.raises(ConfigError, match="not empty"):
        train(tiny_config(synthetic_root, out, baseline, "~logger"))
    assert not baseline.exists() and not (out / "manifest.json").exists()


def test_overwrite_replaces_only_training_outputs(
    synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny_config(synthetic_root, out, baseline_path, "train.total_steps=12", "~logger"))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"train\.overwrite=true"):  # a finished run is never replaced
        train(tiny_config(synthetic_root, out, baseline_path, "train.total_steps=15", "~logger"))
    assert load_training_checkpoint(out / "checkpoint.pt")["state"]["counters"]["global_step"] == 12
    cfg = tiny_config(
        synthetic_root, out, baseline_path, "train.total_steps=15", "train.overwrite=true", "~logger"
    )
    assert train(cfg)["global_step"] == 15
    assert load_training_checkpoint(out / "checkpoint.pt")["state"]["counters"]["global_step"] == 15
    assert (out / "notes.txt").read_text() == "mine"  # not written by training: left alone


def test_unwritable_output_dir_fails_before_any_compute(synthetic_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    baseline = tmp_path / "baseline.json"
    with pytest.raises(OutputError, match="cannot create output folder"):
        train(tiny_config(synthetic_root, blocker / "run", baseline, "~logger"))
    assert not baseline.exists()


def test_null_robot_needs_fast_interaction_and_validation_follows_it(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # debug/tiny keeps the robot (evaluate uses it) but trains with one-point strokes
    cfg = tiny_config(synthetic_root, tmp_path / "run", tmp_path / "baseline.json", "robot=null")
    assert cfg.robot is None and cfg.eval_env.interaction == cfg.env.interaction == "fast"
    cfg = tiny_config(
        synthetic_root, tmp_path / "run", tmp_path / "baseline.json", "robot=null", "env.interaction=robot"
    )
    with pytest.raises(ConfigError, match=r"robot is null but env\.interaction=robot, eval_env"):
        train(cfg)
    assert not (tmp_path / "baseline.json").exists()


def test_multirun_jobs_get_their_own_folders(
    synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    for num in (0, 1):
        hydra_dir = tmp_path / "hydra" / str(num)
        job = HydraJob(num=num, multirun=True, overrides=(f"seed={num}",), output_dir=hydra_dir)
        cfg = tiny_config(synthetic_root, fixed, baseline_path, f"seed={num}", "train.total_steps=12")
        result = train(cfg, job=job)
        folder = fixed / f"job{num}"
        assert Path(result["output_dir"]) == folder and Path(result["checkpoint"]).parent == folder
        manifest = read_manifest(folder)
        assert manifest is not None and manifest["fields"]["seed"] == num
        assert list((folder / "tensorboard").glob("events.out.tfevents.*"))  # beside the checkpoints
    assert not (tmp_path / "hydra").exists()


def test_n_step_and_demonstrations_resume_exactly(
    synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    extra = (
        "agent.n_step=2",
        "agent.demonstrations.episodes=2",
        "agent.demonstrations.strategy={_target_:ivos_rl.strategies.FarthestStrategy}",
        "agent.learner.demo_weight=1.0",
        "~logger",
    )
    full = train(tiny_config(synthetic_root, tmp_path / "full", baseline_path, "train.total_steps=45",
                             *extra))
    assert full["global_step"] == 45 and math.isfinite(full["loss"])
    assert full["agent_step"] == 45 - (2 + 4) * 3  # demonstrations and warm-up do not advance epsilon
    state = load_training_checkpoint(Path(full["checkpoint"]))["state"]
    assert state["demos"]["size"] == 2 * 3
    assert set(state["buffer"]["n_steps"].tolist()) == {1, 2}
    half = tmp_path / "half"
    train(tiny_config(synthetic_root, half, baseline_path, "train.total_steps=24", *extra))
    resumed = train(tiny_config(synthetic_root, half, baseline_path, "train.total_steps=45",
                                "train.resume=auto", *extra))
    assert resumed["eval"] == pytest.approx(full["eval"])
    _assert_same_weights(_learner_state(full["checkpoint"]), _learner_state(resumed["checkpoint"]))


@pytest.mark.slow  # ~30 s: a fresh process pays the torch/hydra import, twice (two jobs)
def test_script_multirun_smoke(tmp_path: Path) -> None:
    """`scripts/train_agent.py -m +debug=tiny` with a fixed output folder: one folder per job."""
    script = CONFIGS.parent / "scripts" / "train_agent.py"
    fixed = tmp_path / "fixed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), "-m", "+debug=tiny", "seed=0,1",
           f"train.output_dir={fixed}", f"paths.root_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for num in (0, 1):
        manifest = read_manifest(fixed / f"job{num}")  # overrides recorded there, not in the path
        assert manifest is not None and f"seed={num}" in manifest["hydra_job"]["overrides"]
        _, meta = load_policy(fixed / f"job{num}" / "agent.pt")
        assert meta["seed"] == num and meta["global_step"] == 90


def test_update_every_spaces_the_learning_rounds(
    synthetic_root: Path, baseline_path: Path, tmp_path: Path
) -> None:
    """45 steps, 4 warm-up episodes of 3 steps: the learning phase covers global steps 13..45, so
    update_every=1 makes 33 updates and update_every=3 one after each of steps 15, 18, ..., 45 (11)."""
    counts = {}
    for k in (1, 3):
        result = train(tiny_config(synthetic_root, tmp_path / f"every{k}", baseline_path,
                                   "train.total_steps=45", f"agent.update_every={k}", "train.eval_every=0",
                                   "~logger"))
        counts[k] = load_training_checkpoint(Path(result["checkpoint"]))["state"]["learner"]["steps"]
    assert counts == {1: 33, 3: 11}
