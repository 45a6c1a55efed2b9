"""Export a trained radialog-mini run into the embedded weights folder.

Re-tunes the classifier thresholds on the phantom-iu validation split (the rule in
`radialog.train.thresholds.tune_thresholds`), reports test metrics, and saves the model with
float16 weights so that the embedded files stay small.

    python scripts/export_mini.py RUN_MODEL_DIR src/radialog/weights/radialog-mini
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from radialog.data import load_dataset
from radialog.imaging import read_xray
from radialog.labels import CHEXPERT_LABELS
from radialog.model import RadialogModel
from radialog.train.data import label_targets
from radialog.train.thresholds import classification_metrics, tune_thresholds


def probabilities(model: RadialogModel, studies, batch: int = 64) -> np.ndarray:
    """Classifier probabilities, images read exactly as at inference (read_xray + transform)."""
    transform = model.classifier_transform()
    out = []
    for start in range(0, len(studies), batch):
        chunk = studies[start : start + batch]
        pixels = torch.stack([transform(read_xray(s.images[0].path)) for s in chunk])
        out.append(model.predict_findings(pixels).float())
    return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_model")
    parser.add_argument("out")
    parser.add_argument("--min-positives", type=int, default=3)
    parser.add_argument("--min-f1", type=float, default=0.3)
    args = parser.parse_args()
    model = RadialogModel.from_pretrained(args.run_model).eval()
    val = load_dataset("phantom-iu", split="val", size=288)
    test = load_dataset("phantom-iu", split="test", size=288)
    with torch.no_grad():
        pv, pt = probabilities(model, val), probabilities(model, test)
    yv, yt = label_targets(val).numpy(), label_targets(test).numpy()
    thresholds = tune_thresholds(
        pv,
        yv,
        default=model.config.classifier.threshold,
        min_positives=args.min_positives,
        min_f1=args.min_f1,
    )
    model.classifier.set_thresholds(thresholds.tolist())
    report = {
        "thresholds": dict(zip(CHEXPERT_LABELS, thresholds.tolist(), strict=True)),
        "val_tuned": classification_metrics(pv, yv, thresholds),
        "test_tuned": classification_metrics(pt, yt, thresholds),
        "test_at_0.5": classification_metrics(pt, yt, 0.5),
    }
    model.is_trained = True
    out = model.save_pretrained(args.out, dtype=torch.float16)
    print(json.dumps(report, indent=1))
    for name in ("val_tuned", "test_tuned", "test_at_0.5"):
        r = report[name]
        print(
            f"{name}: macro AUROC {r['macro_auroc']:.3f}  macro F1 {r['macro_f1']:.3f}  micro F1 {r['micro_f1']:.3f}"
        )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
