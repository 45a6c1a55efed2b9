"""How many "add X" corrections still keep a sentence that says X is absent.

The correction benchmark (`radialog eval --tasks text_correction`) reads the corrected report as
a whole, and the labeler's aggregation counts a report that states X once as X-positive even
when another sentence still negates it. This reads each sentence of each output on its own:

    python scripts/correction_contradictions.py runs/quality4/limit30/new/iu-text/predictions.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radialog.data.instruct import split_report_sentences
from radialog.labeler import get_labeler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", nargs="+", type=Path)
    args = parser.parse_args()
    labeler = get_labeler("rules")
    for path in args.predictions:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        adds = [r for r in rows if r.get("task") == "text_correction" and r.get("mode") == "add"]
        stated = contradicted = 0
        for row in adds:
            sentences = split_report_sentences(row["output"])
            values = (
                [r.labels.get(row["label"]) for r in labeler.label(sentences)] if sentences else []
            )
            if 1 in values:
                stated += 1
                contradicted += 0 in values
        print(
            f"{path}: {len(adds)} add requests, the label stated in {stated}, "
            f"and a sentence still negates it in {contradicted}"
        )


if __name__ == "__main__":
    main()
