"""A short training run on a small synthetic set, for the "beats chance" tests of the
compared networks (SHAN, SCAN, SGR, SAF): each test builds its network and says how it
scores a batch and which loss it takes; this trains it and returns the test mAP both ways.
"""
import torch

from haan_core.datasets import make_synthetic
from haan_core.metrics import chance_map, mean_average_precision


def short_training_map(make_net, score, loss_fn, epochs, clip=None, lr=2e-2, batch=30):
    """Train ``make_net(data)`` for ``epochs`` epochs of Adam (``lr``, batches of ``batch``
    pairs in a seeded order, gradient norm clipped at ``clip`` if given) on ``loss_fn(sim,
    img_labels, txt_labels)``, where ``sim = score(net, batch)``; then score the test split
    in eval mode. Data: 240 training and 120 test pairs of 6 classes (3 scenes x 3
    objects of the synthetic default's kind, 16-d features, at most 8 words), seed 0.
    Returns (i2t mAP, t2i mAP, chance mAP)."""
    torch.manual_seed(0)
    data = make_synthetic(seed=0, n_scene=3, n_object=3, n_train=240, n_val=0,
                          n_test=120, feat_dim=16, max_len=8)
    net = make_net(data)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    train = data.splits["train"]
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for s in range(0, len(order), batch):
            b = data.batch(order[s:s + batch])
            loss = loss_fn(score(net, b), b["img_labels"], b["txt_labels"])
            opt.zero_grad()
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
    net.eval()
    b = data.batch(data.splits["test"])
    with torch.no_grad():
        sim = score(net, b)
    labels = b["img_labels"]
    return (mean_average_precision(sim, labels, labels),
            mean_average_precision(sim.T, labels, labels), chance_map(labels, labels))
