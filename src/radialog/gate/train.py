"""Train the input gate's CNN (`radialog.gate.model.GateNet`) on `radialog.gate.data`.

About a minute on one CPU core: ~10 k thumbnails of 64 x 64, a 20 k-parameter CNN, a few
epochs of Adam. `scripts/train_gate.py` is the command line.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from radialog.gate import data
from radialog.gate.model import CHEST, GateConfig, GateNet, InputGate, thumbnail

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    n_phantoms: int = 1500
    n_synthetic: int = 300
    n_skimage: int = 60
    data_root: Path | None = None


def build_arrays(samples, size: int, classes: tuple[str, ...]):
    """Samples -> (thumbnails (N, size, size) float32, class indices (N,), sources)."""
    thumbs, labels, sources = [], [], []
    for s in samples:
        thumbs.append(thumbnail(s.pixels, size))
        labels.append(classes.index(s.label))
        sources.append(s.source)
    return np.stack(thumbs), np.asarray(labels, np.int64), sources


def validation_chests(size: int, root: Path | None = None) -> np.ndarray:
    """PneumoniaMNIST val + validation phantoms (seeds between train and test): thumbnails
    for choosing the accept threshold."""
    imgs = data.pneumoniamnist("val", root)
    rng = np.random.default_rng(1)
    # Phantom seeds 50,000.. : neither the training (0..) nor the benchmark (100,000..) seeds.
    from radialog.imaging.phantom import render_phantom

    for i in range(150):
        view = ("PA", "AP", "LATERAL")[i % 3]
        imgs.append(render_phantom([], 50_000 + i, size=160, view=view).astype(np.float32))
    return np.stack([thumbnail(data.augment_chest(a, rng), size) for a in imgs])


def train_gate(options: TrainOptions | None = None, config: GateConfig | None = None) -> InputGate:
    """Build the training set, train the CNN, set the thresholds; -> the gate."""
    opts = options or TrainOptions()
    cfg = config or GateConfig()
    torch.manual_seed(opts.seed)
    t0 = time.perf_counter()
    samples = data.training_samples(
        opts.n_phantoms, opts.n_synthetic, opts.n_skimage, opts.seed, opts.data_root
    )
    x, y, sources = build_arrays(samples, cfg.size, cfg.classes)
    counts = Counter(cfg.classes[i] for i in y)
    log.info(
        "gate training set: %d images %s (%.0f s)", len(y), dict(counts), time.perf_counter() - t0
    )

    net = GateNet(cfg)
    # Balanced classes: each class weighs the same in the loss, whatever its count.
    weights = torch.tensor([len(y) / (len(cfg.classes) * max(counts[c], 1)) for c in cfg.classes])
    loss_fn = nn.CrossEntropyLoss(weight=weights.float())
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    steps = opts.epochs * ((len(y) + opts.batch_size - 1) // opts.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=opts.lr, total_steps=steps)
    xt, yt = torch.from_numpy(x)[:, None], torch.from_numpy(y)
    gen = torch.Generator().manual_seed(opts.seed)
    net.train()
    for epoch in range(opts.epochs):
        order = torch.randperm(len(yt), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(order), opts.batch_size):
            idx = order[i : i + opts.batch_size]
            logits = net(xt[idx])
            loss = loss_fn(logits, yt[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            total += float(loss) * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
            seen += len(idx)
        log.info(
            "epoch %d: loss %.4f, train accuracy %.4f", epoch + 1, total / seen, correct / seen
        )
    net.eval()
    gate = InputGate(cfg, net)

    val = validation_chests(cfg.size, opts.data_root)
    scores = gate.probabilities(val)[:, cfg.classes.index(CHEST)]
    cfg.trained_on = {
        "chest": "PneumoniaMNIST official train split (copy a, paediatric, 28 px upsampled to "
        "224) + radialog phantoms (PA/AP/lateral, seeds < 100000), augmented",
        "inverted, rotated": "the same chest images inverted / rotated 90, 180, 270 / flipped",
        "document": "scikit-image 'text' + rendered pages and forms",
        "other": "scikit-image data images (" + ", ".join(data.SKIMAGE_TRAIN) + ") and "
        "synthetic noise, flat fields, gradients, colour fields, shapes, CT-like slices",
        "never seen": "the real radiographs in shared/data/images, PneumoniaMNIST test, "
        "scikit-image " + ", ".join(data.SKIMAGE_TEST) + ", synthetic seeds >= 100000",
        "counts": dict(counts),
        "epochs": opts.epochs,
        "validation chest accepted": round(float((scores >= cfg.accept_at).mean()), 4),
        "validation chest refused": round(float((scores < cfg.refuse_below).mean()), 4),
        "train seconds": round(time.perf_counter() - t0, 1),
    }
    log.info(
        "validation chests: %.2f %% accepted, %.2f %% refused",
        100 * (scores >= cfg.accept_at).mean(),
        100 * (scores < cfg.refuse_below).mean(),
    )
    return gate
