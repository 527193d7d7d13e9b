"""Every top-level config composes, every ablation sweep composes, cheap groups instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from ivos_rl.strategies import Strategy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOP_LEVEL = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def _compose(name: str, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=True)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_config_composes(name: str) -> None:
    cfg = _compose(name)
    assert cfg is not None


def test_every_experiment_is_known() -> None:
    assert {"table1_strategies", "table4_reward_function", "table6_state", "table7_decomposition"} <= set(
        EXPERIMENTS
    )


EVALUATION_EXPERIMENTS = ("davis_interactive_480p", "davis_interactive_480p_declared")


@pytest.mark.parametrize("experiment", EVALUATION_EXPERIMENTS)
def test_standard_setting_composes(experiment: str) -> None:
    cfg = _compose("evaluate", [f"+experiment={experiment}"])
    assert list(cfg.dataset.working_size) == [480, 854] and cfg.max_time == 240.0 and cfg.max_rounds == 8
    model = instantiate(cfg.time_model) if cfg.time_model is not None else None
    assert (model is None) == (experiment == "davis_interactive_480p")
    from ivos_rl.evaluation import EvaluationConfig

    config = EvaluationConfig.from_cfg(cfg)
    assert config.setting == "wild" and config.max_time == 240.0 and config.mask_ap
    assert cfg.strategy._target_.endswith("AgentEnsembleStrategy.from_checkpoints")  # the shipped agent


# Evaluation (not training) sweeps; each has its own composition test.
EVAL_EXPERIMENTS = {e for e in EXPERIMENTS if e.startswith("table1_")} | {"headroom", *EVALUATION_EXPERIMENTS}
# Sweeps of scripts/distill_agent.py (not train_agent); each has its own composition test.
DISTILL_EXPERIMENTS = {"table6_distill"}


@pytest.mark.parametrize(
    "experiment", [e for e in EXPERIMENTS if e not in EVAL_EXPERIMENTS | DISTILL_EXPERIMENTS]
)
def test_agent_ablation_composes(experiment: str) -> None:
    cfg = _compose("train_agent", [f"+experiment={experiment}"])
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    for key, values in params.items():
        known = OmegaConf.select(cfg, key) is not None or key in cfg.hydra.runtime.choices  # value or group
        assert known, f"{experiment} sweeps unknown key {key}"
        for value in str(values).split(","):
            _compose("train_agent", [f"+experiment={experiment}", f"{key}={value}"])


@pytest.mark.parametrize("experiment", ["table4_reward_function", "table6_state", "table7_decomposition"])
def test_every_agent_table_crosses_with_the_held_out_folds(experiment: str) -> None:
    """`-m +experiment=<table> +cv=folds`: the table's variants x the 5 shared folds, none validated on."""
    cfg = _compose("train_agent", [f"+experiment={experiment}", "+cv=folds"])
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    assert str(params["train.fold"]) == "range(0,5)" and len(params) == 2  # the table's own sweep is kept
    assert cfg.train.eval_every == 0 and cfg.train.fold is None  # each job gets its fold from the sweep


RECIPE_GROUPS = ["distance", "entropy", "area_change", "round", "span"]
RECIPE_GRID = [{"residual": False, "demo_weight": 1.0}, {"residual": True, "demo_weight": 0.0}]


def test_distill_table6_expands_to_the_recipe_its_five_leave_outs_and_the_paper_state() -> None:
    """One ``-m`` command, 7 variants: every one the shipped recipe's cross-validation but for its state."""
    import json

    from ivos_rl.agents.distill import DistillConfig

    sweep = _compose("distill_agent", ["+experiment=table6_distill"]).hydra.sweeper.params
    variants = str(sweep.distill_state).split(",")
    assert variants == ["recipe", *(f"no_{g}" for g in RECIPE_GROUPS), "paper"]
    common = (
        "data_dir",
        "eval_dir",
        "seeds",
        "selection_seeds",
        "inner_splits",
        "inner_seed",
        "final",
        "folds",
    )
    shared, outs = None, set()
    for name in variants:
        cfg = _compose(
            "distill_agent", ["+experiment=table6_distill", f"distill_state={name}", "table6.rows=R"]
        )
        groups = list(cfg.distill.state_features)
        want = {"recipe": RECIPE_GROUPS, "paper": []}.get(
            name, [g for g in RECIPE_GROUPS if f"no_{g}" != name]
        )
        assert groups == want
        grid = OmegaConf.to_container(cfg.grid)
        assert grid == (RECIPE_GRID if "span" in groups else RECIPE_GRID[:1])  # residual needs span
        for knobs in grid:  # every knob set builds (DistillConfig refuses a residual head without span)
            DistillConfig(**{**OmegaConf.to_container(cfg.distill), "state_features": tuple(groups), **knobs})
        assert (cfg.distill.epochs, cfg.distill.flip, cfg.n_folds, cfg.inner_folds) == (12, False, 5, 4)
        values = {
            k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in common
        }
        assert shared in (None, values)  # rows, seeds and inner splits do not depend on the variant
        shared = values
        outs.add(cfg.out_dir)
    assert len(outs) == len(variants) and "runs/table6_distill/paper" in outs
    assert shared is not None and shared["final"] is False and shared["folds"] is None
    assert (shared["seeds"], shared["selection_seeds"], shared["inner_splits"], shared["inner_seed"]) == (
        [0, 1, 2],
        [0],
        2,
        "own",
    )
    # distill7.sh's rows: oracle s1 + span_error-Wild s2 + agent s1 per fold; scored on the agent rows only
    rows = [f"R/{sub}/fold{k}" for sub in ("oracle-s1", "span-wild-s2", "agent-s1") for k in range(5)]
    assert shared["data_dir"] == rows and shared["eval_dir"] == rows[10:]
    # the recipe variant with the shipped agent's chosen knobs is the shipped agent's recorded distill config
    shipped = json.loads((CONFIGS.parent / "checkpoints/agent/manifest.json").read_text())["fields"]
    recipe = _compose("distill_agent", ["+experiment=table6_distill"])
    knobs = {**shipped["chosen"]["knobs"], "epochs": shipped["chosen"]["epochs"]}
    built = DistillConfig(**{**OmegaConf.to_container(recipe.distill), **knobs})
    assert {**built.record(), "state_features": list(built.state_features)} == shipped["distill"]


def test_state_feature_configs_match_the_network_width() -> None:
    from ivos_rl.state_features import StateFeatures

    for path in sorted((CONFIGS / "state_features").glob("*.yaml")):
        cfg = _compose("train_agent", ["+experiment=table6_features", f"state_features={path.stem}"])
        assert cfg.agent.qnet.in_features == 2 + StateFeatures.parse(list(cfg.env.state_features)).width
        assert list(cfg.eval_env.state_features) == list(cfg.env.state_features)


@pytest.mark.parametrize("experiment", ["table1_strategies", "table1_baselines"])
def test_table1_sweep_composes_for_every_cell(experiment: str) -> None:
    cfg = _compose("evaluate", [f"+experiment={experiment}"])
    params = cfg.hydra.sweeper.params
    for strategy in str(params.strategy).split(","):
        for setting in str(params.setting).split(","):
            c = _compose("evaluate", [f"strategy={strategy}", f"setting={setting}"])
            assert c.setting.name == setting


def test_headroom_sweep_composes_with_one_folder_per_strategy() -> None:
    cfg = _compose("evaluate", ["+experiment=headroom"])
    assert cfg.setting == "oracle" and cfg.backend._target_.endswith("CachedBackend")
    assert "sequences" in cfg.hydra.job.config.override_dirname.exclude_keys
    for strategy in str(cfg.hydra.sweeper.params.strategy).split(","):
        c = _compose("evaluate", ["+experiment=headroom", f"strategy={strategy}"])
        assert isinstance(instantiate(c.strategy), Strategy)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "strategy").glob("*.yaml")))
def test_strategy_configs_instantiate(name: str) -> None:
    cfg = _compose("evaluate", [f"strategy={name}", f"paths.root_dir={CONFIGS.parent}"])
    assert isinstance(instantiate(cfg.strategy), Strategy)  # agent: the shipped policy


@pytest.mark.parametrize("name", ["propagation", "simulated"])
def test_backend_configs_instantiate(name: str) -> None:
    from ivos_rl.backends import VOSBackend

    cfg = _compose("evaluate", [f"backend={name}"])
    assert isinstance(instantiate(cfg.backend), VOSBackend)


def _header_sweeps(name: str) -> list[list[str]]:
    """The ``-m`` example lines of a config's header comment, as lists of overrides."""
    lines = (CONFIGS / f"{name}.yaml").read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    return [ln.split(" -m ", 1)[1].split("#")[0].split() for ln in header if " -m " in ln]


def _expand(overrides: list[str]) -> list[list[str]]:
    """Every combination of comma-separated sweep values (what ``-m`` launches)."""
    combos: list[list[str]] = [[]]
    for ov in overrides:
        key, values = ov.split("=", 1)
        combos = [[*c, f"{key}={v}"] for c in combos for v in values.split(",")]
    return combos


def test_evaluate_header_sweeps_compose() -> None:
    sweeps = _header_sweeps("evaluate")
    assert sweeps, "the evaluate.yaml header shows sweep examples"
    for overrides in sweeps:
        for combo in _expand(overrides):
            _compose("evaluate", combo)


def test_debug_tiny_shards_merge_through_the_script_entry(tmp_path: Path) -> None:
    """The README workflow on the smoke config: two shards, merge, a normal run folder."""
    from ivos_rl.evaluation import load_sample_results, run_evaluation

    def run(*overrides: str) -> dict[str, object]:
        cfg = _compose(
            "evaluate",
            [
                "+debug=tiny",
                "strategy=worst",
                "setting=oracle",
                f"paths.data_dir={tmp_path / 'data'}",
                *overrides,
            ],
        )
        with open_dict(cfg):
            cfg.pop("hydra")
        return run_evaluation(cfg)

    whole = run(f"output_dir={tmp_path / 'whole'}")
    assert len(whole["curve"]) == 3  # [0, round 1, round 2]
    for i in range(2):
        run(f"shard={i}/2", f"output_dir={tmp_path / f's{i}'}")
    merged = run(f"merge=[{tmp_path / 's0'},{tmp_path / 's1'}]", f"output_dir={tmp_path / 'all'}")
    assert merged["auc_rounds"] == pytest.approx(whole["auc_rounds"])
    assert len(load_sample_results(tmp_path / "all")) == 3
    assert (tmp_path / "all" / "manifest.json").is_file()


def test_quality_group_picks_the_wild_estimator() -> None:
    from ivos_rl.errors import ConfigError
    from ivos_rl.rounds import wild_setting_with_quality

    cfg = _compose("evaluate", ["quality=resnet50", f"paths.root_dir={CONFIGS.parent}"])
    node = wild_setting_with_quality(cfg.setting, cfg.quality)
    assert node["estimator"]["path"].endswith("quality/resnet50-64-fused-davis2016-propagation-v2.pt")
    assert node["estimator"]["_target_"].endswith("QualityEstimator.from_checkpoint")
    assert _compose("evaluate").get("quality") is None  # default: the setting's own estimator
    feats = _compose("evaluate", ["quality=features"])
    assert wild_setting_with_quality(feats.setting, feats.quality)["estimator"] is feats.quality
    with pytest.raises(ConfigError, match="setting=wild"):
        wild_setting_with_quality(_compose("evaluate", ["setting=oracle"]).setting, cfg.quality)
    with pytest.raises(ConfigError, match="no shipped checkpoint"):
        wild_setting_with_quality(cfg.setting, _compose("evaluate", ["quality=resnet18"]).quality)
    # the training side ignores `checkpoint` (it names shipped weights, not a model argument)
    from ivos_rl.quality.train import _build_model

    train_cfg = _compose("train_quality", ["quality=resnet50", "data.dirs=[x]"])
    net = _build_model(train_cfg)
    assert net.fused and net.config.input_size == 64 and len(net.config.features) == 25


@pytest.mark.parametrize(
    "name", ["evaluate", "demo", "train_agent", "gen_quality_data", "gen_lookahead_data"]
)
def test_the_shipped_models_learned_the_default_backend(name: str) -> None:
    """Since session 19 the default backend is propagation_accurate (version 2 + the prior bounded to 64 px);
    the shipped Wild estimator and agent were retrained on it, so every entry point's default backend is the
    one both were trained on (no fingerprint warning), and backend=propagation is still version 2."""
    import json
    import warnings

    from ivos_rl.backends.cached import backend_fingerprint
    from ivos_rl.quality.checkpoint import warn_other_backend
    from ivos_rl.quality.feature_estimator import FeatureQualityEstimator
    from ivos_rl.recommend import SHIPPED_CHECKPOINTS

    cfg = _compose(name)
    assert cfg.backend.prop.uniform_reach == 64.0
    backend = instantiate(cfg.backend)
    shipped = json.loads((CONFIGS.parent / "checkpoints/agent/manifest.json").read_text())["fields"]
    est_path = CONFIGS.parent / "checkpoints" / SHIPPED_CHECKPOINTS["quality"][0]
    assert Path(shipped["estimator"]["path"]).name == est_path.name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fingerprint mismatch would warn
        assert warn_other_backend("the shipped agent", [shipped["backend"]], backend)
        assert FeatureQualityEstimator.from_checkpoint(est_path).check_backend(backend)
    v2 = instantiate(_compose(name, ["backend=propagation"]).backend)
    assert "uniform_reach" not in backend_fingerprint(v2) and "uniform_reach" in backend_fingerprint(backend)


@pytest.mark.parametrize(
    ("name", "overrides", "key"),
    [
        ("evaluate", ["setting=wild"], "setting.estimator.path"),
        ("evaluate", ["quality=features"], "quality.path"),
        ("demo", [], "estimator.path"),
        ("train_quality_features", ["data.dirs=[x]"], "output"),
    ],
)
def test_every_default_estimator_is_the_one_recommend_ships(
    name: str, overrides: list[str], key: str
) -> None:
    """The configs name the default Wild estimator once (paths.default_estimator); the CLI's
    ``recommend`` names it in SHIPPED_CHECKPOINTS: both must be the same file, or the demo and
    ``recommend`` would score frames with different models."""
    from ivos_rl.recommend import SHIPPED_CHECKPOINTS

    path = Path(OmegaConf.select(_compose(name, overrides), key))
    shipped = CONFIGS.parent / "checkpoints" / SHIPPED_CHECKPOINTS["quality"][0]
    assert path.parts[-2:] == shipped.parts[-2:]
    assert shipped.is_file()


@pytest.mark.parametrize(
    ("overrides", "model"),
    [
        ([], "features-davis2016-propagation_accurate-v2.5.features.pt"),
        (
            ["backend=propagation",
             "setting.estimator.path=${paths.checkpoint_dir}/quality/features-davis2016-propagation-v2.3.features.pt"],
            "features-davis2016-propagation-v2.3.features.pt",
        ),
    ],
)
def test_wild_diagnostics_pairs_each_backend_with_the_model_that_learned_it(
    overrides: list[str], model: str
) -> None:
    """+experiment=wild_diagnostics turns the diagnostics on and loads the diagnostics model of the default
    backend (v2.5); version 2 keeps its own (v2.3). Each model accepts its backend without a fingerprint
    warning and reads the two diagnostics columns."""
    import warnings

    from ivos_rl.quality.feature_estimator import FeatureQualityEstimator

    cfg = _compose("evaluate", ["+experiment=wild_diagnostics", "setting=wild", *overrides])
    assert cfg.backend.diagnostics is True
    path = Path(cfg.setting.estimator.path)
    assert path.name == model
    estimator = FeatureQualityEstimator.from_checkpoint(CONFIGS.parent / "checkpoints" / "quality" / model)
    assert {"diag_runs_iou", "diag_runs_xor_rel"} <= set(estimator.model.names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert estimator.check_backend(instantiate(cfg.backend))
