"""The two networks of HAAN (Section 3.1, Figure 4) and their fusion (eq. 7).

GAN (global-level alignment network, parameters theta_C): a fully connected projection of
the global CNN feature (eq. 8) and a Bi-GRU text encoder whose word vectors are averaged
(eq. 9); GCM (eq. 10) compares them.

LAN (local-level alignment network, parameters theta_F): the same kinds of layers, its own
weights, applied to the alpha patch features and to the individual words; LCM
(eqs. 11-15) compares them.

All embeddings are l2-normalised (Section 4.2.3).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .similarity import EPS, gcm, lcm, word_mask


class ImageProjection(nn.Module):
    """Eq. 8: n = K u + b, projecting a CNN feature (global or patch) to the common space."""

    def __init__(self, in_dim: int, embed_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, embed_dim)   # K and b

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(u), dim=-1, eps=EPS)


class TextEncoder(nn.Module):
    """Eq. 9: one-hot words -> word_dim embedding -> Bi-GRU; a word's vector is the mean of
    its forward and backward hidden states. Token id 0 is padding."""

    def __init__(self, vocab_size: int, word_dim: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, embed_dim, batch_first=True, bidirectional=True)

    def words(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(M, beta) token ids -> (M, beta, embed_dim) word vectors m_{q,y}, zero at padding.

        Sequences are packed, so the backward GRU starts at each text's last real word
        and padding never enters the recurrence."""
        k = self.embed(tokens)
        packed = pack_padded_sequence(k, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=tokens.shape[1])
        fwd, bwd = h.chunk(2, dim=-1)
        return (fwd + bwd) / 2

    def text_vector(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """m^C_q = (1/beta) sum_y m_{q,y}, the mean over the real words only."""
        m = self.words(tokens, lengths)
        mask = word_mask(lengths.to(m.device), m.shape[1]).unsqueeze(-1)
        return (m * mask).sum(1) / lengths.to(m.device, m.dtype)[:, None]


class GlobalNet(nn.Module):
    """GAN: eq. 8 on the global image feature, eq. 9 averaged over words, GCM (eq. 10)."""

    def __init__(self, img_dim: int, vocab_size: int, word_dim: int, embed_dim: int):
        super().__init__()
        self.img = ImageProjection(img_dim, embed_dim)
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)

    def encode_images(self, global_feats):
        return self.img(global_feats)

    def encode_texts(self, tokens, lengths):
        return F.normalize(self.txt.text_vector(tokens, lengths), dim=-1, eps=EPS)

    def similarity(self, img_emb, txt_emb, **_):
        return gcm(img_emb, txt_emb)


class LocalNet(nn.Module):
    """LAN: eq. 8 on each of the alpha patch features, eq. 9 per word, LCM (eqs. 11-15)."""

    def __init__(self, img_dim: int, vocab_size: int, word_dim: int, embed_dim: int,
                 lam: float = 9.0):
        super().__init__()
        self.img = ImageProjection(img_dim, embed_dim)
        self.txt = TextEncoder(vocab_size, word_dim, embed_dim)
        self.lam = lam

    def encode_images(self, patch_feats):
        return self.img(patch_feats)

    def encode_texts(self, tokens, lengths):
        words = F.normalize(self.txt.words(tokens, lengths), dim=-1, eps=EPS)
        return words, lengths

    def similarity(self, img_emb, txt_emb, chunk_size=None):
        words, lengths = txt_emb
        return lcm(img_emb, words, lengths, lam=self.lam, chunk_size=chunk_size)


def fuse(sim_c: torch.Tensor | None, sim_f: torch.Tensor | None,
         upsilon1: float = 1.0, upsilon2: float = 1.0) -> torch.Tensor:
    """Eq. 7: L = upsilon1 * L^C + upsilon2 * L^F. A missing module contributes nothing."""
    if sim_c is None and sim_f is None:
        raise ValueError("fuse needs at least one similarity matrix")
    if sim_f is None:
        return upsilon1 * sim_c
    if sim_c is None:
        return upsilon2 * sim_f
    return upsilon1 * sim_c + upsilon2 * sim_f


class HAAN(nn.Module):
    """GAN and/or LAN, as the variant asks (Table 5). Each has its own parameters."""

    def __init__(self, img_dim: int, vocab_size: int, *, word_dim: int = 300,
                 embed_dim: int = 1024, lam: float = 9.0, use_gcm: bool = True,
                 use_lcm: bool = True, patch_dim: int | None = None):
        super().__init__()
        patch_dim = img_dim if patch_dim is None else patch_dim
        self.gan = GlobalNet(img_dim, vocab_size, word_dim, embed_dim) if use_gcm else None
        self.lan = LocalNet(patch_dim, vocab_size, word_dim, embed_dim, lam) if use_lcm else None

    def networks(self) -> dict:
        """{"C": GAN, "F": LAN} for the networks this variant has (objective names of eqs. 1, 4)."""
        nets = {}
        if self.gan is not None:
            nets["C"] = self.gan
        if self.lan is not None:
            nets["F"] = self.lan
        return nets

    def similarities(self, batch, chunk_size=None) -> dict:
        """{"C": L^C, "F": L^F}: (N, M) matrices of the images and texts in ``batch``."""
        out = {}
        if self.gan is not None:
            out["C"] = self.gan.similarity(self.gan.encode_images(batch["global"]),
                                           self.gan.encode_texts(batch["tokens"],
                                                                 batch["lengths"]))
        if self.lan is not None:
            out["F"] = self.lan.similarity(self.lan.encode_images(batch["patches"]),
                                           self.lan.encode_texts(batch["tokens"],
                                                                 batch["lengths"]),
                                           chunk_size=chunk_size)
        return out
