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


# ------------------------------------------------------------ epochs other than the recipe

def test_method_epochs_replace_the_recipe_and_are_named(tmp_path):
    """A method named in method_epochs trains that many epochs (its recipe's otherwise), and
    the note says which; batch and lr stay the recipe's."""
    params = {k: v for k, v in TINY.items() if k != "epochs"}     # epochs left at None
    runs = train_methods(["liu", "cca"], cache_dir=tmp_path, method_epochs={"liu": 3},
                         **params)
    recipe = make_config("synthetic", method="liu", **params)
    assert recipe.epochs != 3
    assert len(runs["Liu et al."].result["val_history"]) == 3
    assert runs["Liu et al."].config.batch_size == recipe.batch_size
    assert runs.scaled == {"Liu et al.": (3, recipe.epochs)}
    assert runs.scaled_note.startswith("SCALED") and \
        f"Liu et al. 3 (recipe {recipe.epochs})" in runs.scaled_note
    assert "CCA" not in runs.scaled_note
    # HAAN's recipe note does not call the cut epochs "their own recipe"
    haan = make_config("synthetic", **params)
    assert "Liu et al. (lr 0.001)" in runs.recipe_note(haan)    # its lr, not "epochs 3"


def test_an_explicit_epochs_parameter_wins_over_method_epochs(tmp_path):
    runs = train_methods(["liu"], cache_dir=tmp_path, method_epochs={"liu": 3}, **TINY)
    assert len(runs["Liu et al."].result["val_history"]) == TINY["epochs"]
    assert runs.scaled == {} and runs.scaled_note == ""


def test_book_epochs_apply_on_synthetic_data_only_and_cut_each_recipe():
    from haan_core.experiments import BOOK_EPOCHS, method_epochs_for
    assert method_epochs_for("synthetic") == BOOK_EPOCHS
    assert method_epochs_for("corel5k") == {}                 # real data: full recipes
    assert method_epochs_for("synthetic", {}) == {}
    for m, n in BOOK_EPOCHS.items():                          # each is a cut, not a raise
        assert 1 <= n < make_config("synthetic", method=m).epochs


@pytest.mark.parametrize("bad, says", [({"vsrn": 2}, "unknown method 'vsrn'"),
                                       ({"sgr": 0}, "whole number of epochs"),
                                       ({"sgr": 2.5}, "whole number of epochs"),
                                       ([("sgr", 2)], "must be a dict")])
def test_bad_method_epochs_are_refused_before_training(tmp_path, bad, says):
    with pytest.raises(HAANInputError, match=says):
        train_methods(["liu"], cache_dir=tmp_path, method_epochs=bad, **TINY)
    assert not any(tmp_path.iterdir())


def test_sgraf_is_the_mean_of_the_sgr_and_saf_matrices_scored_by_hand(tmp_path):
    """SGRAF's row: Diao et al. average the two trained networks' matrices; checked against
    the mean written out and a loop of average precision per query."""
    import torch
    runs = train_methods(["sgr", "saf", "liu"], cache_dir=tmp_path, **TINY)
    got = runs.combined_scores()
    assert set(got) == {"SGRAF"}
    a, b = runs["SGR"].test_eval, runs["SAF"].test_eval
    mean = (a["sims"]["S"].double() + b["sims"]["S"].double()) / 2

    def map_loop(sim, q_labels, g_labels):
        aps = []
        for i in range(sim.shape[0]):
            order = sorted(range(sim.shape[1]), key=lambda j: -float(sim[i, j]))
            hits, precisions = 0, []
            for rank, j in enumerate(order, 1):
                if g_labels[j] == q_labels[i]:
                    hits += 1
                    precisions.append(hits / rank)
            aps.append(sum(precisions) / len(precisions))
        return sum(aps) / len(aps)
    i2t = map_loop(mean, a["img_labels"], a["txt_labels"])
    t2i = map_loop(mean.T, a["txt_labels"], a["img_labels"])
    assert got["SGRAF"]["i2t"] == pytest.approx(i2t, abs=1e-6)
    assert got["SGRAF"]["t2i"] == pytest.approx(t2i, abs=1e-6)
    assert got["SGRAF"]["avg"] == pytest.approx((i2t + t2i) / 2, abs=1e-6)
    # one part alone gives no SGRAF row
    assert train_methods(["sgr"], cache_dir=tmp_path, **TINY).combined_scores() == {}
    # parts tested on other items cannot be combined
    runs["SAF"].test_eval["txt_labels"] = torch.flip(b["txt_labels"], [0])
    with pytest.raises(HAANInputError, match="different items"):
        runs.combined_scores()
