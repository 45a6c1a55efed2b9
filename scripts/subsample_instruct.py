"""Take a fixed random subset of an instruct JSONL per task (the CPU budget buys a few thousand
samples; this picks which), optionally add whole files, shuffle, write atomically.

Samples group by task, except those composed for random lists (`source` "composed"): reports
group as "composed", their follow-ups as "composed_<task>". Groups are sampled in the order given, from one seeded generator,
so a command line reproduces its output byte for byte:

    python scripts/subsample_instruct.py IN.jsonl OUT.jsonl --seed 11 \\
        --take composed=1050 correction=950 report:image=650 --add replay.jsonl

`GROUP:image` / `GROUP:text` take only the samples that show / do not show an image;
`GROUP@LABEL` only those whose report prompt lists LABEL (e.g. `composed@support devices`, to
oversample one finding); both may be combined (`composed@edema:text=50`).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

_LISTED = re.compile(r"Predicted Findings: ([^.]*)\.")


def group_of(sample: dict) -> str:
    if sample.get("source") != "composed":
        return sample["task"]
    return "composed" if sample["task"] == "report" else f"composed_{sample['task']}"


def lists(sample: dict, label: str) -> bool:
    """Does the sample's first prompt list `label` among its predicted findings?"""
    found = _LISTED.search(sample["conversations"][0]["value"])
    return found is not None and label.lower() in [x.strip() for x in found.group(1).split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--take", nargs="+", required=True, metavar="GROUP=N")
    p.add_argument("--add", nargs="*", default=[], type=Path, help="files added whole")
    args = p.parse_args(argv)
    groups: dict[str, list[str]] = {}
    for line in args.source.read_text(encoding="utf-8").splitlines(keepends=True):
        groups.setdefault(group_of(json.loads(line)), []).append(line)
    rng = random.Random(args.seed)
    out: list[str] = []
    taken: set[str] = set()
    for item in args.take:
        name, _, count = item.partition("=")
        name, _, view = name.partition(":")  # GROUP:image / GROUP:text: with or without image
        name, _, label = name.partition("@")  # GROUP@LABEL: the prompt lists LABEL
        if name not in groups or not count.isdigit() or view not in ("", "image", "text"):
            known = ", ".join(sorted(groups))
            sys.exit(
                f"--take {item!r}: expected GROUP[@LABEL][:image|:text]=N, GROUP one of {known}"
            )
        pool = groups[name]
        if view:
            pool = [x for x in pool if (json.loads(x).get("image") is None) == (view == "text")]
        if label:
            pool = [x for x in pool if lists(json.loads(x), label)]
        pool = [x for x in pool if x not in taken]  # a sample is taken once
        picked = rng.sample(pool, min(int(count), len(pool)))
        taken.update(picked)
        out += picked
        print(f"{name}: {min(int(count), len(pool))} of {len(pool)}")
    for extra in args.add:
        lines = extra.read_text(encoding="utf-8").splitlines(keepends=True)
        out += lines
        print(f"{extra}: {len(lines)}")
    rng.shuffle(out)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text("".join(out), encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {len(out)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
