"""Names that moved or were renamed in issue 10 keep working for one release, with a
DeprecationWarning that says what to use instead."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest
import torch

import hmmtune
import hmmtune.io as hio
from hmmtune import HMM, MemoryHMM, OracleMLM
from hmmtune.models import inference


@pytest.fixture
def hmm():
    return hmmtune.paper_hmm(3, 5, seed=0)


@pytest.fixture
def memory():
    return MemoryHMM([0.5, 0.5], [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[[0.6, 0.4, 0.0], [0.1, 0.1, 0.8]], [[0.3, 0.3, 0.4], [1.0, 0.0, 0.0]]])


def _fresh_import(name):
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and hasattr(sys.modules[parent], child):
        delattr(sys.modules[parent], child)
    return importlib.import_module(name)


@pytest.mark.parametrize("old, new", [("hmmtune.models.io", "hmmtune.io"), ("hmmtune.models.expr", "hmmtune.io.expr")])
def test_moved_modules_warn_and_forward(old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*use {new}"):
        mod = _fresh_import(old)
    target = importlib.import_module(new)
    name = "load_model" if new == "hmmtune.io" else "parse_expression"
    with pytest.warns(DeprecationWarning, match=name):
        assert getattr(mod, name) is getattr(target, name)
    if old == "hmmtune.models.io":
        with pytest.warns(DeprecationWarning, match="hmmtune.io.KINDS"):
            assert mod.LOADERS is hio.KINDS
    with pytest.raises(AttributeError):
        mod.no_such_name


def test_renamed_leave_one_out_posteriors(hmm, memory):
    x = hmm.sample(4, 6, seed=1)[0]
    with pytest.warns(DeprecationWarning, match="HMM.loo_posterior"):
        old = hmm.masked_posterior(x)
    assert torch.equal(old, hmm.loo_posterior(x))
    with pytest.warns(DeprecationWarning, match="hmm_loo_posterior"):
        old = inference.hmm_masked_posterior(hmm.initial, hmm.transition, hmm.likelihoods(x))
    assert torch.equal(old, inference.hmm_loo_posterior(hmm.initial, hmm.transition, hmm.likelihoods(x)))
    y = memory.sample(3, 4, seed=2).tokens
    for old_name, new_name in (
        ("masked_posterior", "loo_posterior"),
        ("masked_emission_posterior", "loo_emission_posterior"),
        ("masked_memory_posterior", "loo_memory_posterior"),
    ):
        with pytest.warns(DeprecationWarning, match=new_name):
            old = getattr(memory, old_name)(y)
        assert torch.equal(old, getattr(memory, new_name)(y))
    with pytest.warns(DeprecationWarning, match="'loo_memory'"):
        res = memory.infer(y, ("masked_memory", "masked_posterior"))
    with pytest.warns(DeprecationWarning, match="loo_memory"):
        assert torch.equal(res.masked_memory, res.loo_memory)
    with pytest.warns(DeprecationWarning, match="loo_posterior"):
        assert torch.equal(res.masked_posterior, memory.loo_posterior(y))


def test_model_adapters_warn_and_forward_to_io(hmm, memory, tmp_path):
    with pytest.warns(DeprecationWarning, match="hmmtune.io.hmm_to_json"):
        text = hmm.to_json(tmp_path / "h.json")
    assert text == hio.hmm_to_json(hmm)
    with pytest.warns(DeprecationWarning, match="hmmtune.io.hmm_from_json"):
        back = HMM.from_json(tmp_path / "h.json")
    assert torch.equal(back.emission, hmm.emission)
    with pytest.warns(DeprecationWarning, match="hmm_to_pyro_discrete_hmm"):
        d = hmm.to_pyro_discrete_hmm(4)
    x = hmm.sample(2, 4, seed=0)[0]
    torch.testing.assert_close(d.log_prob(x.to(hmm.dtype)), hmm.log_prob(x))
    pytest.importorskip("hmmlearn")
    with pytest.warns(DeprecationWarning, match="hmm_to_hmmlearn"):
        ref = hmm.to_hmmlearn()
    with pytest.warns(DeprecationWarning, match="hmm_from_hmmlearn"):
        assert torch.equal(HMM.from_hmmlearn(ref).transition, hmm.transition)
    with pytest.warns(DeprecationWarning, match="memory_hmm_to_json"):
        text = memory.to_json()
    with pytest.warns(DeprecationWarning, match="memory_hmm_from_json"):
        assert torch.equal(MemoryHMM.from_json(text).emission, memory.emission)
    import hmmtune.models.memory as memory_module

    with pytest.warns(DeprecationWarning, match="hmmtune.io.memory_hmm_from_json"):
        assert memory_module.memory_hmm_from_json is hio.memory_hmm_from_json


def test_moved_package_names(hmm):
    import hmmtune.models as models
    import hmmtune.models.hmm as hmm_module
    from hmmtune.models import settings

    for name, value in (("load_model", hio.load_model), ("ModelFileError", hio.ModelFileError)):
        with pytest.warns(DeprecationWarning, match=f"hmmtune.io.{name}"):
            assert getattr(models, name) is value
    with pytest.warns(DeprecationWarning, match="hmm_loo_posterior"):
        assert models.hmm_masked_posterior is inference.hmm_loo_posterior
    for mod in (models, hmm_module):
        with pytest.warns(DeprecationWarning, match="chunk_elements"):
            assert mod.MAX_CHUNK_ELEMENTS == settings.current().chunk_elements
    with pytest.warns(DeprecationWarning, match="huge_pages"):
        assert inference.USE_HUGE_PAGES == settings.current().huge_pages
    import hmmtune.oracle as oracle_module

    with pytest.warns(DeprecationWarning, match="MaskMessages"):
        assert oracle_module.MemoryMaskMessages is oracle_module.MaskMessages
    # the top-level names moved without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hmmtune.load_model is hio.load_model and hmmtune.ModelFileError is hio.ModelFileError
        assert isinstance(OracleMLM(hmm).encode(hmm.sample(2, 3, seed=0)[0]), hmmtune.MaskMessages)


def test_settings_override():
    from hmmtune.models import settings

    hmm = hmmtune.paper_hmm(3, 5, seed=0)
    x = hmm.sample(40, 7, seed=3)[0]
    ref = hmm.posterior(x)
    with settings.override(chunk_elements=2 * 7 * 3, huge_pages=not settings.current().huge_pages) as s:
        assert s.chunk_elements == 42
        assert torch.equal(hmm.posterior(x), ref)
    assert settings.current().chunk_elements == 2**24
    with pytest.raises(TypeError, match="unknown inference setting"):
        with settings.override(chunk=3):
            pass
    with pytest.raises(ValueError, match="chunk_elements must be a positive integer"):
        with settings.override(chunk_elements=0):
            pass
