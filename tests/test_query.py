"""Your own queries (haan_core/query.py, `python -m haan_core query`): a query is scored by
the trained model exactly as evaluation scores a pair, unknown words are reported, bad
input is a clear error, and an image file gets the features the dataset's images got."""
import json

import pytest
import torch

from haan_core.cli import main
from haan_core.datasets import PAD, load_dataset
from haan_core.errors import HAANInputError
from haan_core.experiments import make_config
from haan_core.query import fused_scores, image_features, search, tokenize
from haan_core.runs import cached_train

from .test_corpora import SHARED

# a tiny HAAN on the synthetic default: trains in seconds
TINY = {"epochs": 2, "embed_dim": 32, "word_dim": 16}
TINY_FLAGS = ["--epochs", "2", "--embed-dim", "32", "--word-dim", "16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("runs")
    cfg = make_config("synthetic", "HAAN", **TINY)
    data = load_dataset(cfg)
    return cached_train(cfg, cache_dir=cache, data=data), data, cache


def test_text_query_scores_are_the_evaluation_scores(trained):
    """A query equal to test caption j gets column j of the run's test matrix (images x
    texts, the fused eq. 7 score), and the ranking follows it."""
    run, data, cache = trained
    fused = run.test_eval["sims"]["fused"]
    test = data.splits["test"]
    assert fused.shape == (len(test), len(test))
    for j in (0, 17, len(test) - 1):
        r = search(data.decode(int(test[j])), run=run, data=data, top=5)
        assert r.unknown_words == []
        assert torch.allclose(r.scores, fused[:, j], atol=1e-5)
        best = torch.sort(fused[:, j], descending=True, stable=True).indices[:5]
        assert [row["position"] for row in r.rows] == best.tolist()
        assert [row["rank"] for row in r.rows] == [1, 2, 3, 4, 5]
    # the same through the configuration: the cached run is loaded, not trained again
    again = search(data.decode(int(test[0])), cache_dir=cache, data=data, **TINY)
    assert again.run["from_cache"] and torch.allclose(again.scores, fused[:, 0], atol=1e-5)


def test_image_scores_are_the_evaluation_rows(trained):
    """One image against every test text, in one batched call: row i of the matrix."""
    run, data, _ = trained
    fused = run.test_eval["sims"]["fused"]
    test = data.splits["test"]
    texts = data.batch(test)
    for i in (3, 40):
        b = data.batch(test[i:i + 1])
        row = fused_scores(run.model(data), run.config, torch.device("cpu"),
                           {"global": b["global"], "patches": b["patches"]},
                           texts["tokens"], texts["lengths"])
        assert row.shape == (1, len(test))
        assert torch.allclose(row[0], fused[i], atol=1e-5)


def test_unknown_words_are_reported_not_dropped_in_silence(trained):
    run, data, _ = trained
    r = search("Beach, zzz and QQQ zzz!", run=run, data=data)
    assert r.words == ["beach", "and"]
    assert r.unknown_words == ["zzz", "qqq"]
    assert "zzz, qqq" in r.header()
    # the unknown words change nothing: the known ones alone give the same scores
    assert torch.equal(r.scores, search("beach and", run=run, data=data).scores)
    assert r.table().columns.tolist() == ["rank", "position", "score", "class", "image"]


def test_a_query_with_no_known_word_is_a_clear_error(trained):
    run, data, _ = trained
    with pytest.raises(HAANInputError, match=r"unknown zzz, qqq\. Try words such as beach"):
        search("zzz qqq", run=run, data=data)
    for empty in ("", "   ", "?!, ..."):
        with pytest.raises(HAANInputError, match="has no words"):
            search(empty, run=run, data=data)


def test_bad_arguments_are_clear_errors(trained):
    run, data, _ = trained
    with pytest.raises(HAANInputError, match="exactly one query"):
        search(run=run, data=data)
    with pytest.raises(HAANInputError, match="exactly one query"):
        search("beach", image="x.jpeg", run=run, data=data)
    with pytest.raises(HAANInputError, match="top must be a positive integer"):
        search("beach", top=0, run=run, data=data)
    with pytest.raises(HAANInputError, match="synthetic dataset has no images.*corel5k"):
        search(image="photo.jpeg", run=run, data=data)


def test_tokenize_as_the_datasets_did():
    vocab = [PAD, "<unk>", "close-up", "sea", "shore", "f-16", "sky"]
    known, unknown = tokenize("Close-up, SEA-shore; f-16 <unk> sky-blue", vocab)
    assert known == ["close-up", "sea", "shore", "f-16", "sky"]
    assert unknown == ["unk", "blue"]    # "<unk>" is never a word of a query


def test_cli_prints_the_ranking_and_writes_the_sheet(trained, tmp_path, capsys):
    _, data, cache = trained
    sheet = tmp_path / "q.png"
    rc = main(["query", "beach dog zzz", "--top", "3", "--cache-dir", str(cache),
               "--show", str(sheet), *TINY_FLAGS])
    out = capsys.readouterr().out
    assert rc == 0
    assert "not in the vocabulary, left out: zzz" in out
    assert "run: synthetic, HAAN, seed 0, loaded from the cache" in out
    assert "test images of the synthetic data" in out
    assert "synthetic test image of class" in out
    assert len([line for line in out.splitlines() if "synthetic test image" in line]) == 3
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))          # written atomically


@pytest.mark.parametrize("args, message", [
    (["zzz qqq"], "unknown zzz, qqq"),
    (["--image", "photo.jpeg"], "synthetic dataset has no images"),
    ([], "exactly one query"),
])
def test_cli_bad_input_is_one_line_and_status_2(trained, capsys, args, message):
    _, _, cache = trained
    rc = main(["query", *args, "--cache-dir", str(cache), *TINY_FLAGS])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_corel_image_query_uses_the_datasets_features(tmp_path):
    """An image file gets the features its dataset row has (same backbone, preprocessing,
    3 x 3 crops), and a run of one epoch ranks the 249 test texts for it."""
    root = SHARED / "corel5k"
    if not (root / "labels").is_dir():
        pytest.skip(f"no real Corel 5K at {root}")
    cfg = make_config("corel5k", root=str(root), backbone="efficientnet_lite0", epochs=1,
                      embed_dim=32, word_dim=16)
    from haan_core.corpora import load_corpus
    from haan_core.datasets import feature_cache_dir
    stem = feature_cache_dir(cfg) / "corel5k-efficientnet_lite0-crops"
    ids = load_corpus("corel5k", root).ids
    if not stem.with_suffix(".pt").exists() or \
            json.loads(stem.with_suffix(".json").read_text())["ids"] != ids:
        pytest.skip(f"no cached Corel 5K features at {stem}.pt (extracting all takes long)")
    data = load_dataset(cfg)
    test = data.splits["test"]
    k = int(test[7])                                  # a test pair
    path = next((root / "images").glob(f"*/{data.meta['ids'][k]}.jpeg"))

    g, p = image_features(path, cfg)
    scale = data.global_feats[k].abs().max()
    assert torch.allclose(g[0], data.global_feats[k], atol=1e-4 * scale)
    assert torch.allclose(p[0], data.patch_feats[k], atol=1e-4 * scale)

    r = search(image=str(path), dataset="corel5k", root=str(root), cache_dir=tmp_path,
               data=data, backbone="efficientnet_lite0", epochs=1, embed_dim=32, word_dim=16)
    assert r.kind == "image" and r.scores.shape == (len(test),)
    assert r.query_class == data.class_names[int(data.labels[k])]
    assert len(r.rows) == 10 and all(isinstance(row["text"], str) for row in r.rows)
    assert {"match", "text"} <= set(r.table().columns)
    # a text query ranks the test images and knows their files (the thumbnails)
    t = search("sky water", dataset="corel5k", root=str(root), cache_dir=tmp_path,
               data=data, backbone="efficientnet_lite0", epochs=1, embed_dim=32, word_dim=16)
    assert t.run["from_cache"]
    assert all(f is not None and f.exists() for f in t.image_files)



def test_a_missing_or_unreadable_image_is_a_clear_error(tmp_path):
    """A missing file fails before anything loads or trains; an unreadable one names it."""
    with pytest.raises(HAANInputError, match="no image file at .*nothere.jpeg"):
        search(image=str(tmp_path / "nothere.jpeg"), dataset="corel5k", root=str(tmp_path),
               cache_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    bad = tmp_path / "bad.jpeg"
    bad.write_bytes(b"not a picture")
    cfg = make_config("corel5k", root=str(tmp_path), backbone="efficientnet_lite0")
    with pytest.raises(HAANInputError, match="could not read the image .*bad.jpeg"):
        image_features(bad, cfg)


def test_patch_attention_is_the_largest_weight_of_eq_13_for_each_patch(trained):
    """The GCM/LCM page's drawing: for each patch, the word of largest eq. 13 weight,
    checked against softmax(lam * U_bar) written out for the one pair."""
    from haan_core.experiments import patch_attention
    run, data, _ = trained
    index = int(data.splits["test"][5])
    for lam in (1.0, 9.0, 50.0):
        words, weights = patch_attention(run, data, index, lam=lam)
        model = run.model(data)
        b = data.batch(torch.tensor([index]))
        with torch.no_grad():
            n = model.lan.encode_images(b["patches"])[0]                   # (alpha, d)
            m, _ = model.lan.encode_texts(b["tokens"], b["lengths"])
            m = m[0, :int(b["lengths"][0])]                                 # real words only
        assert len(words) == len(weights) == n.shape[0]
        for x in range(n.shape[0]):
            U = torch.stack([torch.nn.functional.cosine_similarity(n[x], m[y], dim=0)
                             for y in range(len(m))])                       # eq. 11, patch x
            r_all = torch.relu(torch.stack([torch.nn.functional.cosine_similarity(
                n, m[y][None], dim=1) for y in range(len(m))], dim=1))      # (alpha, beta)
            U_bar = torch.relu(U) / r_all.norm(dim=0).clamp_min(1e-8)       # eq. 12
            a = torch.softmax(lam * U_bar, dim=0)                           # eq. 13
            y = int(a.argmax())
            assert words[x] == data.vocab[int(b["tokens"][0, y])]
            assert abs(weights[x] - float(a[y])) < 1e-5
