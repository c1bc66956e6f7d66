"""Study files: parsing, overrides, expansion into trials, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanplatform.scaling.spec import StudyError, expand, load_study, parse_study

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "scaling"
STUDIES = sorted(CONFIGS.glob("*.yaml"))


def test_shipped_studies_exist():
    names = {p.stem for p in STUDIES}
    assert {"toy_exp_sin_sq", "toy_j0_20x", "toy_xy", "tiny"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_loads_and_expands(path):
    spec = load_study(path)
    trials = expand(spec)
    assert trials and len({t.key for t in trials}) == len(trials)
    assert all(p.is_file() for p in spec.base_files())


def test_toy_study_is_the_paper_setup():
    spec = load_study(CONFIGS / "toy_exp_sin_sq.yaml")
    kan, mlp = spec.families["kan"], spec.families["mlp"]
    assert kan.sizes_from == "stages" and kan.grid_sizes[:5] == [3, 5, 10, 20, 50]
    assert kan.widths == [[2, 1, 1]]
    assert mlp.depths == [2, 3, 4] and len(spec.seeds) >= 2
    trials = expand(spec)
    kan_trials = [t for t in trials if t.family == "kan"]
    assert len(kan_trials) == len(spec.seeds)  # one grid-extension run per seed
    assert kan_trials[0].overrides["grid.schedule"] == kan.grid_sizes
    mlp_widths = {tuple(t.overrides["model.width"]) for t in trials if t.family == "mlp"}
    assert (2, 5, 1) in mlp_widths and (2, 12, 12, 12, 1) in mlp_widths
    assert all(t.overrides["model.match"] == "none" for t in trials if t.kind == "mlp")


def test_overrides_go_to_study_or_run_config():
    spec = load_study(
        CONFIGS / "tiny.yaml",
        ["seeds=[0,1]", "families.mlp.depths=[2,3]", "families.mlp.widths=[4]",
         "fit.n_boot=7", "data.n_train=50", "families.kan.overrides.grid.steps_per_stage=3"],
    )
    assert spec.seeds == [0, 1] and spec.fit.n_boot == 7
    assert spec.families["mlp"].depths == [2, 3]
    assert spec.overrides["data.n_train"] == 50
    assert spec.families["kan"].overrides["grid.steps_per_stage"] == 3
    trials = expand(spec)
    assert {t.seed for t in trials} == {0, 1}
    assert {tuple(t.overrides["model.width"]) for t in trials if t.kind == "mlp"} == {
        (2, 4, 1), (2, 4, 4, 1)}


def test_kan_runs_family_expands_grid_sizes_times_widths():
    spec = parse_study({"families": {"k": {"kind": "kan", "grid_sizes": [3, 5],
                                           "widths": [[2, 1, 1], [2, 2, 1]]}}, "seeds": [0]})
    labels = sorted(t.label for t in expand(spec))
    assert labels == ["w2-1-1-g3", "w2-1-1-g5", "w2-2-1-g3", "w2-2-1-g5"]


@pytest.mark.parametrize(
    "data, match",
    [
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "sedes": [0]}, "sedes"),
        ({"families": {}}, "families"),
        ({"families": {"k": {"kind": "cnn"}}}, "families.k.kind"),
        ({"families": {"k": {"kind": "mlp", "sizes_from": "stages", "widths": [4]}}},
         "sizes_from=stages needs kind=kan"),
        ({"families": {"k": {"kind": "kan", "sizes_from": "stages", "grid_sizes": [5, 3]}}},
         "increasing"),
        ({"families": {"k": {"kind": "mlp", "depths": [2, 3], "widths": {2: [4]}}}},
         "no widths for depth"),
        ({"families": {"k": {"kind": "mlp", "widths": [4], "gird_sizes": [3]}}},
         "gird_sizes"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "x": ["model/size"]},
         "size axis"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "fit": {"drop_tail": "x"}},
         "drop_tail"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "base": ["nope.yaml"]},
         "not found"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "max_failures": "abc"},
         r"max_failures: must be an integer >= 0, got 'abc'"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "max_failures": -7},
         "max_failures: .* got -7"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "max_concurrent_trials": 0},
         "max_concurrent_trials"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "stack_runs": "no"},
         "stack_runs: must be true or false"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "resources": {"cpu": "x"}},
         "resources.cpu"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "resources": {"cpus": 1}},
         "resources: unknown key"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "seeds": ["a"]},
         "seeds must be a list of integers"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "fit": {"n_boot": -1}},
         "fit.n_boot"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "fit": {"ci_level": 1.5}},
         "fit.ci_level"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "name": "a/b"},
         "path separators"),
        ({"families": {"k": {"kind": "kan", "grid_sizes": [3]}}, "metric": "test/accuracy"},
         "bounded by 1: fit a loss .* test/loss"),
    ],
)
def test_bad_studies_fail_with_the_key_named(data, match):
    with pytest.raises(StudyError, match=match):
        parse_study(data, source=CONFIGS / "x.yaml")


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(StudyError, match="not found"):
        load_study(tmp_path / "nope.yaml")


def test_family_fit_settings_override_the_study_ones():
    spec = load_study(CONFIGS / "toy_exp_sin_sq.yaml")
    assert spec.fit_for("kan").drop_tail == "plateau"
    assert spec.fit_for("mlp").drop_tail == "none"
    assert spec.fit_for("mlp").n_boot == spec.fit.n_boot
    with pytest.raises(StudyError, match="families.k.fit"):
        parse_study({"families": {"k": {"kind": "kan", "grid_sizes": [3],
                                        "fit": {"drop_tial": "none"}}}})
