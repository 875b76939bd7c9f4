"""Retrieval metrics of Section 4.3: mAP (eq. 25), precision@k and precision-recall curves,
and the instance-level Recall@K that SHAN and TSHSR report.

For mAP, precision and recall curves, relevant means "same class as the query"; for
Recall@K, only the query's own paired item is relevant. Everything is vectorised over queries: one
stable sort of the similarity matrix, then cumulative sums along the ranking.
"""
from __future__ import annotations

import torch

from .errors import HAANInputError, check_labels, check_nonempty, check_tensor


def _ranked_relevance(sim, query_labels, gallery_labels):
    """(Q, G) float tensor: 1 where the r-th ranked gallery item is relevant.

    Rank by descending similarity; ties keep gallery order (a stable sort).
    """
    check_tensor(sim, "sim", 2)
    check_nonempty(sim, "sim", 0)
    check_nonempty(sim, "sim", 1)
    check_labels(query_labels, "query_labels", sim.shape[0])
    check_labels(gallery_labels, "gallery_labels", sim.shape[1])
    order = torch.sort(sim.detach(), dim=1, descending=True, stable=True).indices
    gl = gallery_labels.to(sim.device)[order]
    return (gl == query_labels.to(sim.device)[:, None]).to(torch.float64)


def average_precision(sim, query_labels, gallery_labels, k: int | None = None) -> torch.Tensor:
    """Eq. 25 per query: AP = (1/T) sum_{r<=k} P(r) delta(r), T = relevant items in the
    top k; a query with none scores 0. Returns a (Q,) float64 tensor."""
    rel = _ranked_relevance(sim, query_labels, gallery_labels)
    if k is not None:
        if k < 1:
            raise HAANInputError(f"k must be a positive integer or None, got {k}")
        rel = rel[:, :k]
    hits = rel.cumsum(dim=1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=rel.dtype, device=rel.device)
    precision_at_r = hits / ranks
    T = rel.sum(dim=1)
    return (precision_at_r * rel).sum(dim=1) / T.clamp_min(1)


def mean_average_precision(sim: torch.Tensor, query_labels: torch.Tensor,
                           gallery_labels: torch.Tensor, k: int | None = None) -> float:
    """mAP: eq. 25 averaged over the queries (rows of ``sim``)."""
    return float(average_precision(sim, query_labels, gallery_labels, k).mean())


def precision_at_k(sim, query_labels, gallery_labels, k: int) -> float:
    """Mean fraction of relevant items among the top k."""
    rel = _ranked_relevance(sim, query_labels, gallery_labels)
    if not 1 <= k <= rel.shape[1]:
        raise HAANInputError(f"k must lie in 1..{rel.shape[1]} (the gallery size), got {k}")
    return float(rel[:, :k].mean())


def pr_curve(sim, query_labels, gallery_labels, recall_levels=None):
    """Interpolated precision-recall curve averaged over queries.

    At each recall level R, a query's precision is the largest precision it reaches at
    any rank whose recall is >= R (the standard interpolation); queries with no relevant
    item are left out. Returns (recall_levels, precision), both (n,) float64 tensors.
    """
    rel = _ranked_relevance(sim, query_labels, gallery_labels)
    rel = rel[rel.sum(dim=1) > 0]
    if recall_levels is None:
        recall_levels = torch.linspace(0, 1, 21, dtype=torch.float64)
    recall_levels = torch.as_tensor(recall_levels, dtype=torch.float64, device=rel.device)
    if rel.shape[0] == 0:
        return recall_levels, torch.zeros_like(recall_levels)
    hits = rel.cumsum(dim=1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=rel.dtype, device=rel.device)
    precision = hits / ranks                                   # (Q, G)
    recall = hits / rel.sum(dim=1, keepdim=True)               # (Q, G), non-decreasing
    # best precision at rank r or deeper (recall only grows with depth) ...
    best_deeper = precision.flip(1).cummax(dim=1).values.flip(1)
    # ... taken at the first rank whose recall reaches each level
    levels = recall_levels.expand(rel.shape[0], -1).contiguous()
    first = torch.searchsorted(recall.contiguous(), levels - 1e-12).clamp_max(rel.shape[1] - 1)
    interp = best_deeper.gather(1, first)                      # (Q, L)
    return recall_levels, interp.mean(dim=0)


def retrieval_scores(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
                     k: int | None = None) -> dict:
    """I2T (image queries over the text gallery), T2I and their average (Table 3's AVG)."""
    i2t = mean_average_precision(sim, img_labels, txt_labels, k)
    t2i = mean_average_precision(sim.T, txt_labels, img_labels, k)
    return {"i2t": i2t, "t2i": t2i, "avg": (i2t + t2i) / 2}


def chance_map(query_labels: torch.Tensor, gallery_labels: torch.Tensor, trials: int = 20,
               seed: int = 0) -> float:
    """mAP of random rankings with these labels: the chance level to compare against."""
    g = torch.Generator().manual_seed(seed)
    scores = [mean_average_precision(torch.rand(len(query_labels), len(gallery_labels),
                                                generator=g), query_labels, gallery_labels)
              for _ in range(trials)]
    return sum(scores) / trials


def recall_at_k(sim: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Instance-level Recall@K (the metric SHAN and TSHSR report): the fraction of queries
    (rows) whose paired gallery item, the one with the same index (``sim[i, i]``), is among
    the k most similar. Ties keep gallery order, as in the mAP (a stable sort). Classes
    play no part: another item of the query's class ranked first is a miss.

    sim (N, N), row i and column i a pair -> {k: recall}."""
    check_tensor(sim, "sim", 2)
    check_nonempty(sim, "sim", 0)
    if sim.shape[0] != sim.shape[1]:
        raise HAANInputError(
            f"Recall@K needs one paired gallery item per query (row i paired with column "
            f"i), so a square matrix; got {tuple(sim.shape)}")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise HAANInputError(f"Recall@K needs k >= 1, got {ks}")
    order = torch.sort(sim.detach(), dim=1, descending=True, stable=True).indices
    own = torch.arange(sim.shape[0], device=sim.device)[:, None]
    rank = (order == own).to(torch.int64).argmax(dim=1)           # 0 = ranked first
    return {k: float((rank < k).to(torch.float64).mean()) for k in ks}


def recall_scores(sim: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Recall@K both ways: {"i2t": {k: r}, "t2i": {k: r}} for images (rows) x texts."""
    return {"i2t": recall_at_k(sim, ks), "t2i": recall_at_k(sim.T, ks)}
