"""DSCMR: Zhen, Hu, Wang and Peng, "Deep Supervised Cross-Modal Retrieval" (CVPR 2019),
the standard supervised class-level method on these datasets (issue #12; not in HAAN's
Table 3), on HAAN's features.

Each modality has its own network into a common space whose last layer the two share;
a linear classifier P, also shared, maps the common space to the label space. With U, V
the common representations of a batch of n images and n texts (columns u_i, v_j) and Y
their one-hot labels, DSCMR minimises (DSCMR eq. 8)

    J = J_1 + lambda * J_2 + eta * J_3,

    J_1 = ||P^T U - Y||_F + ||P^T V - Y||_F                          (eq. 3, label space)
    J_2 = J_2^{uv} + J_2^{uu} + J_2^{vv},  J_2^{uv} = 1/n^2 sum_ij [log(1 + e^{G_ij}) - S_ij G_ij]
          G_ij = cos(u_i, v_j) / 2, S_ij = 1 when i and j share a label    (eqs. 4-6, common space)
    J_3 = ||U - V||_F                                               (eq. 7, modality invariance)

As in the authors' released code, J_1 and J_3 are the mean over the batch of each row's
Euclidean norm (||p_i - y_i||_2, ||u_i - v_i||_2) rather than the Frobenius norm of the
whole matrix, the cosine is halved, and lambda = 1e-3, eta = 0.1 (their defaults). A pair
is scored by the cosine of u and v.

The image-text term J_2^{uv} is a function of the batch's cosine matrix, so it is the
loss the training loop computes on the score matrix (:func:`dscmr_loss`); J_1, the
within-modality terms J_2^{uu}, J_2^{vv}, and J_3 are the network's own terms
(:meth:`DSCMRNet.extra_loss`).

Adaptation to this project (ambiguity log 56): images are the global feature (the paper
uses 4096-d VGG19 fc7), texts the bag of words (the paper: 300-d Doc2Vec or BoW); the
sizes of the released code (one 2048-unit ReLU layer per modality, a shared 1024-d layer);
Adam at lr 1e-4, batch 100, 200 epochs (theirs; Adam's betas stay the loop's 0.9, 0.999,
theirs are 0.5, 0.999).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HAANInputError, check_labels, check_tensor
from .liu import bag_of_words

LAMBDA, ETA = 1e-3, 1e-1   # the released code's alpha and beta


def half_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """G of DSCMR eq. 4: cos(a_i, b_j) / 2 for every row pair, (n_a, n_b)."""
    return F.normalize(a, dim=1, eps=1e-6) @ F.normalize(b, dim=1, eps=1e-6).T / 2


def likelihood_term(G: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """DSCMR eqs. 5-6: the mean over all pairs of log(1 + e^{G_ij}) - S_ij G_ij, the
    negative log-likelihood of the label similarities S under p(S_ij = 1) = sigmoid(G_ij)."""
    return (F.softplus(G) - same.to(G.dtype) * G).mean()


def dscmr_loss(sim: torch.Tensor, img_labels: torch.Tensor, txt_labels: torch.Tensor,
               lam: float = LAMBDA) -> torch.Tensor:
    """lambda * J_2^{uv} (DSCMR eqs. 4-6) from the batch's cosine matrix ``sim`` (N, M):
    G = sim / 2, S = same class."""
    check_tensor(sim, "sim", 2)
    img_labels = check_labels(img_labels, "img_labels", sim.shape[0]).to(sim.device)
    txt_labels = check_labels(txt_labels, "txt_labels", sim.shape[1]).to(sim.device)
    same = img_labels[:, None] == txt_labels[None, :]
    return lam * likelihood_term(sim / 2, same)


class DSCMRNet(nn.Module):
    """DSCMR's two networks, the shared common-space layer and the shared classifier."""
    image_inputs = ("global",)

    def __init__(self, img_dim: int, vocab: int, num_classes: int, *, hidden: int = 2048,
                 common: int = 1024, lam: float = LAMBDA, eta: float = ETA):
        super().__init__()
        for name, v in (("img_dim", img_dim), ("vocab", vocab), ("num_classes", num_classes),
                        ("hidden", hidden), ("common", common)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise HAANInputError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("lam", lam), ("eta", eta)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise HAANInputError(f"{name} must be a finite number >= 0, got {v!r}")
        self.img = nn.Sequential(nn.Linear(img_dim, hidden), nn.ReLU())
        self.txt = nn.Sequential(nn.Linear(vocab, hidden), nn.ReLU())
        self.shared = nn.Linear(hidden, common)          # the last layer, shared
        self.classifier = nn.Linear(common, num_classes)  # P, shared
        self.vocab, self.num_classes = vocab, num_classes
        self.lam, self.eta = float(lam), float(eta)

    def encode_images(self, inputs) -> torch.Tensor:
        (g,) = inputs
        return self.shared(self.img(g))

    def encode_texts(self, tokens, lengths) -> torch.Tensor:
        return self.shared(self.txt(bag_of_words(tokens, lengths, self.vocab)))

    def similarity(self, img, txt, chunk_size=None) -> torch.Tensor:
        """The cosine of every image-text pair in the common space, (N, M)."""
        return F.normalize(img, dim=1, eps=1e-6) @ F.normalize(txt, dim=1, eps=1e-6).T

    def extra_loss(self, U, V, img_labels, txt_labels) -> torch.Tensor:
        """J_1 + lambda (J_2^{uu} + J_2^{vv}) + eta J_3 of DSCMR eq. 8, for a batch of pairs
        (row i of U and of V is one pair)."""
        if U.shape[0] != V.shape[0]:
            raise HAANInputError("DSCMR's invariance term (eq. 7) needs the batch's pairs: "
                                 f"got {U.shape[0]} images and {V.shape[0]} texts")
        Y_img = F.one_hot(img_labels, self.num_classes).to(U.dtype)
        Y_txt = F.one_hot(txt_labels, self.num_classes).to(V.dtype)
        j1 = (self.classifier(U) - Y_img).norm(dim=1).mean() + \
            (self.classifier(V) - Y_txt).norm(dim=1).mean()
        j2 = likelihood_term(half_cosine(U, U), img_labels[:, None] == img_labels[None, :]) + \
            likelihood_term(half_cosine(V, V), txt_labels[:, None] == txt_labels[None, :])
        j3 = (U - V).norm(dim=1).mean()
        return j1 + self.lam * j2 + self.eta * j3


def build(cfg, data, device, opts: dict) -> DSCMRNet:
    if data.global_feats is None:
        raise HAANInputError(f"method 'dscmr' maps the global image feature, and dataset "
                             f"{data.name!r} has none")
    return DSCMRNet(data.feat_dim, len(data.vocab), len(data.class_names),
                    hidden=opts["hidden"], common=opts["common"], lam=opts["lambda"],
                    eta=opts["eta"])
