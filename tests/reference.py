"""Explicit loops written from the paper's equations, one scalar at a time.

They are slow and plain on purpose: the vectorised code in haan_core is tested against
them. Python floats (double precision) throughout.
"""
import math


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def norm(a):
    return math.sqrt(dot(a, a))


def cosine(a, b):
    return dot(a, b) / (norm(a) * norm(b))


def gcm(img, txt):
    """Eq. 10."""
    return [[cosine(n, m) for m in txt] for n in img]


def lcm_pair(patches, words, lam):
    """Eqs. 11-15 for one image (alpha patches) and one text (its real words only)."""
    alpha, beta = len(patches), len(words)
    U = [[cosine(patches[x], words[y]) for y in range(beta)] for x in range(alpha)]  # eq. 11
    U_bar = [[0.0] * beta for _ in range(alpha)]
    for y in range(beta):                                                             # eq. 12
        col = math.sqrt(sum(max(0.0, U[x][y]) ** 2 for x in range(alpha)))
        for x in range(alpha):
            U_bar[x][y] = max(0.0, U[x][y]) / col if col > 0 else 0.0
    total = 0.0
    for x in range(alpha):
        e = [math.exp(lam * U_bar[x][y]) for y in range(beta)]                        # eq. 13
        a = [v / sum(e) for v in e]
        kappa = [sum(a[y] * words[y][d] for y in range(beta)) for d in range(len(words[0]))]
        total += cosine(patches[x], kappa)                                            # eq. 14
    return total / alpha                                                              # eq. 15


def lcm(patches, words, lengths, lam):
    return [[lcm_pair(P, W[:n], lam) for W, n in zip(words, lengths)] for P in patches]


def awl_anchor(row, anchor_label, cand_labels, rho, mining, weighting):
    """Eq. 23's braces for one anchor, with eqs. 16-17 as the issue pins them."""
    pos = [j for j, h in enumerate(cand_labels) if h == anchor_label]
    neg = [j for j, h in enumerate(cand_labels) if h != anchor_label]
    if mining:
        S_pos = [j for j in pos if neg and row[j] < max(row[k] for k in neg) + rho]   # eq. 16
        S_neg = [j for j in neg if pos and row[j] > min(row[k] for k in pos) - rho]   # eq. 17
    else:
        S_pos, S_neg = pos, neg
    value = 0.0
    if weighting:
        if S_pos:
            value += math.log(sum(math.exp(1 - row[k]) for k in S_pos))
        if S_neg:
            value += math.log(sum(math.exp(row[k] - 1) for k in S_neg))
    else:
        if S_pos:
            value += sum(1 - row[k] for k in S_pos) / len(S_pos)
        if S_neg:
            value += sum(row[k] - 1 for k in S_neg) / len(S_neg)
    return value


def awl(sim, img_labels, txt_labels, rho, mining, weighting, directions):
    total = 0.0
    if directions in ("both", "i2t"):
        total += sum(awl_anchor(sim[i], img_labels[i], txt_labels, rho, mining, weighting)
                     for i in range(len(sim))) / len(sim)
    if directions in ("both", "t2i"):
        cols = [[sim[i][j] for i in range(len(sim))] for j in range(len(sim[0]))]
        total += sum(awl_anchor(cols[j], txt_labels[j], img_labels, rho, mining, weighting)
                     for j in range(len(cols))) / len(cols)
    return total


def triplet(sim, img_labels, txt_labels, margin, hardest, directions):
    def term(rows, anchor_labels, cand_labels):
        total = 0.0
        for i, row in enumerate(rows):
            pos = [j for j, h in enumerate(cand_labels) if h == anchor_labels[i]]
            neg = [k for k, h in enumerate(cand_labels) if h != anchor_labels[i]]
            for j in pos:
                hinges = [max(0.0, margin - row[j] + row[k]) for k in neg]
                total += (max(hinges) if hinges else 0.0) if hardest else sum(hinges)
        return total / len(rows)
    total = 0.0
    if directions in ("both", "i2t"):
        total += term(sim, img_labels, txt_labels)
    if directions in ("both", "t2i"):
        cols = [[sim[i][j] for i in range(len(sim))] for j in range(len(sim[0]))]
        total += term(cols, txt_labels, img_labels)
    return total


def average_precision(scores, query_label, gallery_labels, k=None):
    """Eq. 25 for one query; ties keep gallery order (Python's sort is stable)."""
    order = sorted(range(len(scores)), key=lambda j: -scores[j])
    if k is not None:
        order = order[:k]
    hits, total = 0, 0.0
    for r, j in enumerate(order, start=1):
        if gallery_labels[j] == query_label:
            hits += 1
            total += hits / r
    return total / hits if hits else 0.0


def mean_average_precision(sim, query_labels, gallery_labels, k=None):
    aps = [average_precision(row, q, gallery_labels, k) for row, q in zip(sim, query_labels)]
    return sum(aps) / len(aps)


def pr_curve(sim, query_labels, gallery_labels, levels):
    """Interpolated precision at each recall level, averaged over the queries that have a
    relevant item, one query at a time: the precision-recall curve of Figure 5."""
    per_query = []
    for row, q in zip(sim, query_labels):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        rel = [gallery_labels[j] == q for j in order]
        if not any(rel):
            continue
        pts, hits = [], 0
        for r, is_rel in enumerate(rel, start=1):
            hits += is_rel
            pts.append((hits / sum(rel), hits / r))          # (recall, precision)
        per_query.append([max(p for rc, p in pts if rc >= lv - 1e-12) for lv in levels])
    return [sum(col) / len(per_query) for col in zip(*per_query)]


def recall_at_k(sim, k):
    """Instance-level Recall@K by counting: query i's own item i ranks r = the number of
    items scored higher, plus the tied ones earlier in the gallery; a hit when r < k."""
    hits = 0
    for i, row in enumerate(sim):
        r = sum(1 for j, s in enumerate(row) if s > row[i] or (s == row[i] and j < i))
        hits += r < k
    return hits / len(sim)
