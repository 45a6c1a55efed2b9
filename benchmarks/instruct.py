"""Instruct builder throughput and memory: samples/s and peak traced memory at two sizes.

Runs on the IU X-ray train split (torchxrayvision package data; R2Gen split file when
../shared/data is present) with replay disabled, writing to a temporary folder. Peak memory is
measured with tracemalloc over the build only (dataset loading excluded), so a streaming
builder shows about the same peak at both sizes.

    .venv/bin/python benchmarks/instruct.py [--sizes 2000,20000]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import tracemalloc
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radialog.data import load_dataset
from radialog.data.instruct import InstructConfig, build_instruct

SPLIT_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "iu" / "r2gen_annotation.json"
)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,20000")
    args = parser.parse_args()
    kwargs = {"split_file": SPLIT_FILE} if SPLIT_FILE.is_file() else {}
    t0 = time.perf_counter()
    studies = load_dataset("iu", "train", **kwargs)
    load_s = time.perf_counter() - t0

    table = Table(
        title=f"instruct builder, IU train ({len(studies)} studies, load {load_s:.1f} s), replay off"
    )
    for column in ("samples", "seconds", "samples/s", "peak traced MiB", "file MiB"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(x) for x in args.sizes.split(",")):
            out = Path(tmp) / f"instruct-{size}.jsonl"
            config = InstructConfig(seed=0, size=size)
            # Speed without tracemalloc (it slows Python down ~2x), then memory in a second run.
            t0 = time.perf_counter()
            result = build_instruct(studies, out, config)
            seconds = time.perf_counter() - t0
            tracemalloc.start()
            build_instruct(studies, out, config)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            table.add_row(
                str(result.total),
                f"{seconds:.2f}",
                f"{result.total / seconds:,.0f}",
                f"{peak / 2**20:.1f}",
                f"{out.stat().st_size / 2**20:.1f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
