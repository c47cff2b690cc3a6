"""Stale public names of the experiments and learned rooms: they still work for one release,
with a DeprecationWarning; the recipes of exp1 / exp2 come from one module_recipe."""

from __future__ import annotations

import pickle

import pytest

from hmmtune.experiments import exp1, exp2, sweep


def test_experiments_table_and_experiment_module_are_deprecated_and_still_work():
    with pytest.warns(DeprecationWarning, match="EXPERIMENTS is deprecated"):
        from hmmtune.experiments import EXPERIMENTS
    assert EXPERIMENTS == {"exp1": "hmmtune.experiments.exp1", "exp2": "hmmtune.experiments.exp2"}
    with pytest.warns(DeprecationWarning, match="EXPERIMENTS is deprecated"):
        assert sweep.EXPERIMENTS is EXPERIMENTS
    with pytest.warns(DeprecationWarning, match="experiment_module is deprecated"):
        assert sweep.experiment_module("exp2") is exp2
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="unknown experiment 'exp9'"):
        sweep.experiment_module("exp9")


def test_learned_progress_is_deprecated_and_still_works():
    from hmmtune.learned.experiment import LearnedProgress

    with pytest.warns(DeprecationWarning, match="use hmmtune.experiments.Progress"):
        p = LearnedProgress(1, 2, {"key": "k"}, False)
    assert p == sweep.Progress(1, 2, {"key": "k"}, False)


@pytest.mark.parametrize("mod", [exp1, exp2])
def test_the_module_recipe_reads_the_module_and_travels_to_workers(mod, monkeypatch):
    recipe = sweep.get_recipe(mod.NAME)
    assert (recipe.title, recipe.methods, recipe.published, recipe.build) == (mod.TITLE, mod.METHODS, mod.PUBLISHED, mod.build)
    assert (recipe.default_seeds, recipe.quick_seeds) == (mod.DEFAULT_SEEDS, mod.QUICK_SEEDS)
    assert recipe.plan(quick=True) == mod.configs(quick=True)
    monkeypatch.setattr(mod, "run", lambda config, seed: {"seen": (config, seed)})  # looked up when called
    clone = pickle.loads(pickle.dumps(recipe.run_one))
    assert clone("c", 3, None) == {"seen": ("c", 3)}
