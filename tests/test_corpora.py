"""The dataset loaders on the real copies (skipped when absent) and on a folder with quirks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from haan_core import HAANInputError
from haan_core.corpora import load_corel5k, load_pascal, load_wiki

# real copies: $HAAN_DATA (as the book uses), else $HAAN_SHARED_DATA, else ../shared/data
SHARED = Path(os.environ.get("HAAN_DATA") or os.environ.get(
    "HAAN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _real(name):
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"no real copy of {name} at {path} (set HAAN_SHARED_DATA)")
    return path


def _kinds(corpus):
    return {p["kind"]: p for p in corpus.problems}


def test_corel5k_reproduces_the_papers_counts():
    c = load_corel5k(_real("corel5k"))
    s = c.summary()
    assert s["pairs"] == 4992 and s["classes"] == 50 and s["dictionary"] == 260
    assert s["splits"] == {"train": 4493, "val": 250, "test": 249}
    assert s["vocabulary"] == 260
    k = _kinds(c)
    assert "161092" in k["duplicate id"]["detail"]
    assert k["image without a label line"]["ids"] == ["121060"]
    assert len(set(c.ids)) == len(c.ids)                     # the duplicate is kept once
    assert all(p.exists() for p in c.image_paths)


def test_wiki_reproduces_the_papers_counts_and_reports_its_quirks():
    c = load_wiki(_real("wiki"))
    s = c.summary()
    assert s["pairs"] == 2866 and s["classes"] == 10
    assert s["splits"] == {"train": 2173, "val": 231, "test": 462}
    assert s["split_classes"]["val_and_test_share"] == 10      # every class in both halves
    assert set(s["files_sha256"]) == {"trainset_txt_img_cat.list", "testset_txt_img_cat.list",
                                      "categories.list"}
    k = _kinds(c)
    assert "'Ab3150b0c" in k["stray character"]["detail"]
    assert "only the global network" in k["no images"]["detail"]


def test_pascal_split_is_stratified_and_seeded():
    root = _real("pascal_sentence")
    c = load_pascal(root, seed=0)
    assert c.summary()["splits"] == {"train": 800, "val": 100, "test": 100}
    for split in ("val", "test"):
        per_class = [sum(c.labels[i] == k for i in c.splits[split]) for k in range(20)]
        assert per_class == [5] * 20
    assert c.summary()["split_classes"] == {"train": 20, "val": 20, "test": 20,
                                            "val_and_test_share": 20, "in_test_not_val": 0}
    assert load_pascal(root, seed=0).splits == c.splits
    assert load_pascal(root, seed=1).splits["test"] != c.splits["test"]
    assert "4 captions" in _kinds(c)["caption count"]["detail"]
    assert sum(p is not None for p in c.image_paths) == 47


def _write_corel(root: Path):
    """A tiny Corel-layout folder with every quirk the real one has, and more."""
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "words").write_text("sky\nwater\ntiger\nonlytest\nonlytrain\n")
    (root / "labels" / "training_label").write_text(
        "100 1 3  \n101 2  \nx102 1 2\n103 5\n")          # stray 'x'; 103 only out-of-dict
    (root / "labels" / "test_label").write_text("200 1 4\n200 1 4\n201 2 3\n")  # duplicate
    for cd, ids in (("1", ["100", "101", "102", "200"]), ("2", ["103", "201", "999"])):
        (root / "images" / cd).mkdir(parents=True)
        for i in ids:
            (root / "images" / cd / f"{i}.jpeg").write_bytes(b"\xff\xd8fake")
    (root / "images" / "2" / "104.jpeg").write_bytes(b"")          # zero bytes


def test_quirks_are_handled_and_reported(tmp_path):
    _write_corel(tmp_path)
    c = load_corel5k(tmp_path, n_val=1, val_test_split="order")
    k = _kinds(c)
    assert {"stray character", "duplicate id", "image without a label line",
            "zero-byte image", "tagless image"} <= set(k)
    assert "'x102' read as '102'" in k["stray character"]["detail"]
    assert k["image without a label line"]["ids"] == ["104", "999"]
    assert "1 images left with no dictionary tag" in k["tagless image"]["detail"]
    assert c.ids == ["100", "101", "102", "200", "201"]
    assert c.splits == {"train": [0, 1, 2], "val": [3], "test": [4]}
    # the dictionary is the words in both train and test; the vocabulary is train-only
    assert c.vocabulary() == ["sky", "tiger", "water"]
    assert "onlytest" not in c.vocabulary() and "onlytrain" not in c.vocabulary()


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(HAANInputError, match="ParkByungYoon/corel-5k"):
        load_corel5k(tmp_path)
    with pytest.raises(HAANInputError, match="SVCL"):
        load_wiki(tmp_path)


def _check(root, *flags):
    return subprocess.run([sys.executable, "-m", "haan_core", "data", "check", "corel5k",
                           "--root", str(root), *flags], capture_output=True, text=True,
                          timeout=60)


def test_data_check_prints_the_summary(tmp_path):
    _write_sorted_corel(tmp_path, counts=(60, 60, 60, 60, 60))
    proc = _check(tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    for key in ("pairs", "classes", "vocabulary", "splits", "problems", "split_classes",
                "files_sha256"):
        assert key in summary
    assert summary["pairs"] == 310 and summary["splits"] == {"train": 10, "val": 250, "test": 50}
    assert summary["split_classes"] == {"train": 5, "val": 5, "test": 5,
                                        "val_and_test_share": 5, "in_test_not_val": 0}
    assert str(tmp_path) not in proc.stdout                      # no machine path
    old = json.loads(_check(tmp_path, "--val-test-split", "order").stdout)
    assert old["split_classes"]["val_and_test_share"] == 1   # class 5 straddles the cut
    # a test list shorter than the paper's validation half: a clear error, not an empty test
    small = tmp_path / "small"
    _write_corel(small)
    proc = _check(small)
    assert proc.returncode == 2 and "cannot take 250 validation items" in proc.stderr


# ------------------------------------------------------------------ the val/test cut

def _write_sorted_corel(root: Path, counts=(1, 2, 3, 5, 8, 13, 4, 2)):
    """A Corel-layout folder whose test list is sorted by class, as the real one is: class
    k has counts[k] test images and two training images."""
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "words").write_text("sky\nwater\n")
    train, test = [], []
    for cd, n in enumerate(counts, start=1):
        (root / "images" / str(cd)).mkdir(parents=True)
        for j in range(n + 2):
            img = f"{cd}{j:03d}"
            (root / "images" / str(cd) / f"{img}.jpeg").write_bytes(b"\xff\xd8fake")
            (train if j < 2 else test).append(f"{img} 1 2")
    (root / "labels" / "training_label").write_text("\n".join(train) + "\n")
    (root / "labels" / "test_label").write_text("\n".join(test) + "\n")
    return counts


def _classes(c, split):
    return {c.labels[i] for i in c.splits[split]}


def test_stratified_cut_puts_every_class_with_two_test_images_in_both_halves(tmp_path):
    counts = _write_sorted_corel(tmp_path)
    n_test = sum(counts)
    for seed in range(5):
        c = load_corel5k(tmp_path, n_val=n_test // 2, split_seed=seed)
        assert len(c.splits["val"]) == n_test // 2 and len(c.splits["test"]) == n_test - n_test // 2
        assert sorted(c.splits["val"] + c.splits["test"]) == sorted(range(2 * len(counts), len(c.ids)))
        both = _classes(c, "val") & _classes(c, "test")
        assert both == {k for k, n in enumerate(counts) if n >= 2}
        for k, n in enumerate(counts):   # each class gets about half of its images
            in_val = sum(c.labels[i] == k for i in c.splits["val"])
            assert abs(in_val - n / 2) <= 1, (seed, k, in_val, n)
    assert load_corel5k(tmp_path, n_val=19, split_seed=3).splits == \
        load_corel5k(tmp_path, n_val=19, split_seed=3).splits
    assert load_corel5k(tmp_path, n_val=19, split_seed=3).splits["val"] != \
        load_corel5k(tmp_path, n_val=19, split_seed=4).splits["val"]
    # the order cut of a class-sorted list: the halves share at most one class
    old = load_corel5k(tmp_path, n_val=n_test // 2, val_test_split="order")
    assert len(_classes(old, "val") & _classes(old, "test")) <= 1
    assert old.summary()["split_classes"]["val_and_test_share"] <= 1


def test_split_in_two_refuses_bad_input():
    from haan_core.corpora import split_in_two
    with pytest.raises(HAANInputError, match="val_test_split"):
        split_in_two([0, 1], [0, 0], 1, how="random")
    with pytest.raises(HAANInputError, match="cannot take 3"):
        split_in_two([0, 1], [0, 0], 3)
    assert split_in_two([5, 6, 7], {5: 0, 6: 0, 7: 1}, 0) == ([], [5, 6, 7])


def test_corel5k_real_halves_share_every_class():
    """On the real copy the test list is sorted by class: the order cut gives validation and
    test halves with no class in common; the default stratified cut shares all 50."""
    root = _real("corel5k")
    c = load_corel5k(root)
    test_counts = {}
    for i in c.splits["val"] + c.splits["test"]:
        test_counts[c.labels[i]] = test_counts.get(c.labels[i], 0) + 1
    assert _classes(c, "val") & _classes(c, "test") == {k for k, n in test_counts.items() if n >= 2}
    assert c.summary()["split_classes"]["val_and_test_share"] == 50
    assert c.summary()["dictionary"] == 260 and c.summary()["dictionary_train_only"] == 371
    old = load_corel5k(root, val_test_split="order")
    assert old.summary()["split_classes"] == {"train": 50, "val": 25, "test": 25,
                                              "val_and_test_share": 0, "in_test_not_val": 25}
    assert old.splits["train"] == c.splits["train"]
    assert set(c.files) == {"words", "training_label", "test_label"}


def test_corpus_becomes_training_data(tmp_path):
    import torch

    from haan_core.datasets import paired_from_corpus
    _write_corel(tmp_path)
    c = load_corel5k(tmp_path, n_val=1, val_test_split="order")
    n = len(c.ids)
    ok = torch.tensor([True, True, False, True, True])        # pair 2 unreadable
    data = paired_from_corpus(c, torch.rand(n, 6), torch.rand(n, 9, 4), ok)
    assert data.meta["ids"] == ["100", "101", "200", "201"] and data.meta["dropped_unreadable"] == 1
    assert {k: v.tolist() for k, v in data.splits.items()} == {"train": [0, 1], "val": [2],
                                                               "test": [3]}
    assert data.feat_dim == 6 and data.patch_dim == 4 and data.alpha == 9
    assert data.decode(0) == "sky tiger" and data.decode(2) == "sky"


def test_words_unseen_in_training_become_unk():
    import torch

    from haan_core.corpora import Corpus
    from haan_core.datasets import paired_from_corpus
    c = Corpus("toy", ["a", "b", "c"], [["red", "car"], ["blue", "car"], ["green", "car"]],
               [0, 1, 0], ["x", "y"], {"train": [0, 1], "val": [2], "test": []})
    data = paired_from_corpus(c, torch.rand(3, 4), None)
    assert data.vocab == ["<pad>", "<unk>", "blue", "car", "red"]   # train words only
    assert data.decode(2) == "<unk> car"


def test_training_on_a_real_dataset_needs_its_root():
    from haan_core import HAANConfig
    from haan_core.train import train
    with pytest.raises(HAANInputError, match="needs --root"):
        train(HAANConfig.for_dataset("corel5k", progress=False))


def test_map_on_the_real_pascal_vgg19_features_matches_the_loop_and_beats_chance():
    """eq. 25 on real features: the 100 Pascal test images (VGG19 fc7) and their 300-d
    sentence features, unimodal retrieval by cosine, against the explicit loop."""
    import scipy.io
    import torch

    from haan_core.metrics import chance_map, mean_average_precision

    from . import reference as R
    folder = _real("pascal_sentence") / "dscmr_vgg19_features"
    load = lambda n: torch.from_numpy(scipy.io.loadmat(folder / f"{n}.mat")[n]).double()
    lab = load("test_img_lab").long().squeeze(1)
    assert len(lab) == 100 and lab.unique().numel() == 20
    for name in ("test_img", "test_txt"):
        x = torch.nn.functional.normalize(load(name), dim=1)
        sim = x @ x.T
        sim.fill_diagonal_(-2.0)
        fast = mean_average_precision(sim, lab, lab)
        slow = R.mean_average_precision(sim.tolist(), lab.tolist(), lab.tolist())
        assert fast == pytest.approx(slow, abs=1e-9)
        assert fast > 3 * chance_map(lab, lab)


def test_default_root_follows_haan_data(monkeypatch, tmp_path):
    from haan_core.corpora import default_root
    monkeypatch.setenv("HAAN_DATA", str(tmp_path))
    assert default_root("pascal") == tmp_path / "pascal_sentence"
    monkeypatch.delenv("HAAN_DATA")
    assert default_root("corel5k").parts[-2:] == ("data", "corel5k")
    with pytest.raises(HAANInputError, match="unknown dataset"):
        default_root("coco")


def test_max_words_cuts_real_texts_before_the_vocabulary():
    from haan_core import HAANConfig
    from haan_core.datasets import load_dataset
    root = str(_real("wiki"))
    whole = load_dataset(HAANConfig.for_dataset("wiki", root=root))
    cut = load_dataset(HAANConfig.for_dataset("wiki", root=root, max_words=7))
    assert cut.tokens.shape[1] == 7 < whole.tokens.shape[1]
    assert int(cut.lengths.max()) == 7 and len(cut.vocab) < len(whole.vocab)
    assert torch.equal(cut.tokens[:, :3] > 0, whole.tokens[:, :3] > 0)  # same first words kept
