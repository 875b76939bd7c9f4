"""train_methods: the compared methods (issue #11) trained for the book's measured pages."""
import dataclasses

import pytest

from haan_core.errors import HAANInputError
from haan_core.experiments import make_config, method_label, train_methods
from haan_core.methods import METHODS

# a tiny synthetic problem and tiny networks: about a second per method on a laptop CPU
TINY = dict(seed=0, device="cpu", epochs=2, batch_size=20, embed_dim=8, word_dim=8,
            extra={"n_train": 40, "n_val": 20, "n_test": 20, "n_scene": 2, "n_object": 2})


def test_trains_every_method_the_registry_can_train_and_names_the_others(tmp_path):
    """Read from the registry, so a method that becomes trainable is picked up."""
    trainable = [m for m, spec in METHODS.items() if spec.trains]
    others = [m for m, spec in METHODS.items() if not spec.trains]
    runs = train_methods(list(METHODS), "synthetic", cache_dir=tmp_path, **TINY)
    assert list(runs) == [method_label(m) for m in trainable]
    assert runs.skipped == others
    assert runs.note == (f"not trainable yet: {', '.join(others)}" if others else "")
    n = TINY["extra"]["n_test"]
    for m in trainable:
        run = runs[method_label(m)]
        assert run.config.method == m and run.result["method"] == m
        assert run.config.variant == "HAAN"            # a compared method has no variant
        assert run.result["provenance"]["seed"] == 0 and len(run.result["val_history"]) == 2
        assert {"i2t", "t2i", "avg"} <= set(run.scores)
        sims = run.test_eval["sims"]
        assert sims["fused"].shape == (n, n)
        if m != "haan":                                 # one network: "S" is what is tested
            assert set(sims) == {"S", "fused"} and (sims["fused"] == sims["S"]).all()


def test_a_second_call_reads_the_cache_and_a_given_dataset_is_used(tmp_path):
    data_cfg = make_config("synthetic", **TINY)
    from haan_core.datasets import load_dataset
    data = load_dataset(data_cfg)
    first = train_methods(["shan"], cache_dir=tmp_path, data=data, **TINY)
    again = train_methods(["shan"], cache_dir=tmp_path, **TINY)
    assert not first["SHAN"].from_cache and again["SHAN"].from_cache
    assert again["SHAN"].result["avg"] == first["SHAN"].result["avg"]


def test_a_method_that_cannot_train_is_skipped_with_a_note(tmp_path, monkeypatch):
    for m in ("shan", "liu"):
        monkeypatch.setitem(METHODS, m, dataclasses.replace(METHODS[m], trains=False))
    runs = train_methods(["shan", "liu"], cache_dir=tmp_path, **TINY)
    assert dict(runs) == {} and runs.skipped == ["shan", "liu"]
    assert runs.note == "not trainable yet: shan, liu"
    assert not any(tmp_path.iterdir())                 # nothing was trained
    assert train_methods([], cache_dir=tmp_path, **TINY).note == ""


def test_an_unknown_method_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(HAANInputError, match="unknown method 'vsrn'") as e:
        train_methods(["shan", "vsrn"], cache_dir=tmp_path, **TINY)
    assert all(name in str(e.value) for name in METHODS)
    assert not any(tmp_path.iterdir())                 # refused before training anything


def test_labels_are_distinct_and_as_the_papers_write_them():
    labels = [method_label(m) for m in METHODS]
    assert len(set(labels)) == len(labels)
    assert (method_label("haan"), method_label("shan"), method_label("tshsr"),
            method_label("liu")) == ("HAAN", "SHAN", "TSHSR", "Liu et al.")
