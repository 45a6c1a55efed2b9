"""The careful IU development set: pick its report ids, and print their findings for annotators.

    python scripts/iu_labeling_sheet.py select   # writes benchmarks/labels/iu-careful/ids.json
    python scripts/iu_labeling_sheet.py print [--part dev|heldout] [--start N] [--count N]

Selection (fixed by the seed): 200 IU reports with a FINDINGS section, half drawn at random
from all of them and half from those whose findings contain a word behind the labeler's known
error categories (a masked word, a granuloma or nodule, a device, an opacity or density), so
that the set has enough positives to measure. The first 120 (in drawn order) are the
development part the rules may be tuned on; the last 80 are held out. Only ids are written:
the report text is CC BY-NC-ND and is read from torchxrayvision's package.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDS = ROOT / "benchmarks" / "labels" / "iu-careful" / "ids.json"
HARD = re.compile(
    r"xxxx|granulom|nodul|clip|wire|pacemaker|pacer|tube|catheter|line\b|opaci|densit|icd|port"
)


def findings_by_id() -> dict[str, str]:
    from radialog.data.iu import read_reports, torchxrayvision_data_dir

    reports = read_reports(torchxrayvision_data_dir() / "NLMCXR_reports.tgz")
    out = {}
    for r in reports:
        text = " ".join((r.sections.get("FINDINGS") or "").split())
        if text:
            out[r.uid] = text
    return out


def select(seed: int = 20261203, n: int = 200, dev: int = 120) -> dict:
    texts = findings_by_id()
    ids = sorted(texts, key=lambda u: int(u[3:]))
    rng = random.Random(seed)
    chosen = rng.sample(ids, n // 2)
    hard = [u for u in ids if u not in chosen and HARD.search(texts[u].lower())]
    chosen += rng.sample(hard, n - n // 2)
    rng.shuffle(chosen)
    return {"seed": seed, "dev": chosen[:dev], "heldout": chosen[dev:]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["select", "print"])
    p.add_argument("--part", choices=["dev", "heldout", "all"], default="all")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, default=1000)
    args = p.parse_args(argv)
    if args.command == "select":
        IDS.parent.mkdir(parents=True, exist_ok=True)
        IDS.write_text(json.dumps(select(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {IDS}")
        return 0
    chosen = json.loads(IDS.read_text(encoding="utf-8"))
    ids = chosen["dev"] + chosen["heldout"] if args.part == "all" else chosen[args.part]
    texts = findings_by_id()
    for uid in ids[args.start : args.start + args.count]:
        print(f"{uid}\t{texts[uid]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
