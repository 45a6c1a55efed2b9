"""Train the input gate and save it into a model directory's `gate/` folder.

    nice -n 19 .venv/bin/python scripts/train_gate.py \
        --out src/radialog/weights/radialog-mini/gate

About a minute on one CPU core. Reads the real chest X-rays from `--data`
(default ../shared/data) by path; needs scikit-image for the photograph negatives.
Measure the result with `benchmarks/gate.py`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from radialog.gate.train import TrainOptions, train_gate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the gate folder to write")
    parser.add_argument("--data", type=Path, default=None, help="shared data root")
    parser.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    parser.add_argument("--phantoms", type=int, default=TrainOptions.n_phantoms)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    opts = TrainOptions(
        epochs=args.epochs, n_phantoms=args.phantoms, seed=args.seed, data_root=args.data
    )
    gate = train_gate(opts)
    out = gate.save_pretrained(args.out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"saved the gate to {out} ({size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
