"""Generation speed: transformers generate() vs radialog's decoders, in one process.

For the embedded default model (untrained is fine for speed), on the same report prompts
(four images: the bundled example radiograph and three phantoms, each through the classifier
and the image encoder), this measures interleaved, so machine load hits every variant alike:

- one stream: decode tokens/s (tokens after the first / time after the first) and first-token
  latency (prefill + first step, from the streamer's first token) per variant;
- batched: all prompts in one call (left padding), tokens/s;
- agreement of each variant's greedy tokens with generate()'s (fp32 must be identical;
  bf16/int8 weights and llama.cpp's quantised GGUF change outputs a little), and how often the
  rule labeler's 14 findings of the decoded text differ from those of generate()'s text;
- end to end: `generate_report(image)` for one image (read, preprocess, classifier, encoder,
  generation) with each backend;
- LLM load time from the dequantised-GGUF safetensors cache, and (--measure-load) without it;
- beside a CPU-bound competitor process (a busy machine): a one-shot `radialog report` with
  the default thread choice and with one thread per core (--no-competitor skips it);
- a warm one-shot `radialog report --backend llamacpp` in its own process, as started today
  (without the torch LLM, radialog.model.lazy_llm) against the eager load of the torch LLM
  (RADIALOG_EAGER_LLM=1), interleaved (--one-shot runs only these rows).

    .venv/bin/python benchmarks/generate.py [--quick] [--threads N] [--max-new-tokens N]

The llama.cpp rows appear when llama-cpp-python is installed (`make llamacpp`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radialog.imaging import example_image_path
from radialog.imaging.phantom import render_phantom
from radialog.labeler import label_report
from radialog.model.config import load_named_config
from radialog.model.decoding import FastDecoder, FastOptions, decoder_for
from radialog.model.llamacpp import LlamaCppOptions, llamacpp_available, llamacpp_decoder_for
from radialog.model.llm import StopOnText, load_llm
from radialog.model.prompt import findings_text, report_conversation
from radialog.model.radialog_model import RadialogModel


class _Clock:
    """Streamer that timestamps the first generated token."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self._prompt = True

    def put(self, value: Any) -> None:
        if self._prompt:
            self._prompt = False
        elif self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


@dataclass
class Stats:
    tokens: int = 0
    seconds: float = 0.0
    first_token: list[float] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)
    decode_tokens: int = 0
    decode_seconds: float = 0.0

    @property
    def tps(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")

    @property
    def decode_tps(self) -> float:
        return self.decode_tokens / self.decode_seconds if self.decode_seconds else float("nan")


def _cpu_has_bf16() -> bool:
    """Native bfloat16 matmuls (AVX512-BF16 or AMX), read from the CPU flags (Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _trim(row: list[int], eos: int) -> list[int]:
    """Generated ids up to and including EOS (later ones are padding)."""
    return row[: row.index(eos) + 1] if eos in row else row


class Runner:
    def __init__(self, model: RadialogModel, max_new_tokens: int) -> None:
        self.model = model
        self.n = max_new_tokens
        self.eos = model.codec.eos_token_id
        self.stop = StopOnText(model.tokenizer)

    def hf(self, inputs: dict[str, Any], streamer: Any) -> torch.Tensor:
        from transformers import StoppingCriteriaList

        m = self.model
        with torch.inference_mode():
            return m.llm.generate(
                **inputs,
                max_new_tokens=self.n,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.eos,
                pad_token_id=m.codec.pad_token_id,
                stopping_criteria=StoppingCriteriaList([self.stop]),
                streamer=streamer,
            )

    def fast(self, decoder: FastDecoder, inputs: dict[str, Any], streamer: Any) -> torch.Tensor:
        return decoder.decode(
            inputs["inputs_embeds"],
            inputs["attention_mask"],
            max_new_tokens=self.n,
            eos_token_id=self.eos,
            pad_token_id=self.model.codec.pad_token_id,
            stopping=self.stop,
            streamer=streamer,
        )

    def run(
        self, variant: str, decoder: FastDecoder | None, inputs: dict[str, Any], st: Stats
    ) -> None:
        clock = _Clock() if inputs["attention_mask"].shape[0] == 1 else None
        t0 = time.perf_counter()
        out = self.hf(inputs, clock) if decoder is None else self.fast(decoder, inputs, clock)
        end = time.perf_counter()
        st.seconds += end - t0
        rows = [_trim(r, self.eos) for r in out.tolist()]
        st.tokens += sum(len(r) for r in rows)
        st.outputs.extend(rows)
        if clock is not None and clock.first is not None:
            st.first_token.append(clock.first - t0)
            st.decode_tokens += len(rows[0]) - 1
            st.decode_seconds += end - clock.first


def _agreement(rows: list[list[int]], ref: list[list[int]]) -> tuple[int, float]:
    """(identical sequences, fraction of reference tokens matched before the first difference)."""
    same = sum(a == b for a, b in zip(rows, ref, strict=True))
    matched = total = 0
    for a, b in zip(rows, ref, strict=True):
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        matched += k
        total += len(b)
    return same, matched / max(total, 1)


def _findings_changed(rows: list[list[int]], ref: list[list[int]], decode: Any) -> float:
    """Share of (output, label) pairs whose rule-labeler value differs from the reference's."""
    changed = total = 0
    for a, b in zip(rows, ref, strict=True):
        la, lb = label_report(decode(a)).labels, label_report(decode(b)).labels
        changed += sum(la[k] != lb[k] for k in lb)
        total += len(lb)
    return changed / max(total, 1)


def _llamacpp_reference(
    source: Any, prompt: str, n: int, threads: int, repeat: int
) -> tuple[int, float, float]:
    """The bar a user compares with: llama-cpp-python's own `Llama.generate` on the base GGUF
    (text prompt only: it cannot take our image embeddings). -> (prompt tokens, decode tok/s,
    median first-token ms)."""
    from radialog.model.llamacpp import open_llama

    llm = open_llama(source, n_ctx=1024, n_threads=threads, verbose=False)  # AMX-safe params
    tokens = llm.tokenize(prompt.encode())
    decode_tokens, decode_seconds, firsts = 0, 0.0, []
    for _ in range(repeat + 1):  # the first run warms up
        llm.reset()
        t0 = time.perf_counter()
        first, count = None, 0
        for _token in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
            count += 1
            if first is None:
                first = time.perf_counter()
            if count == n:
                break
        end = time.perf_counter()
        if _ > 0 and first is not None:
            firsts.append(first - t0)
            decode_tokens += count - 1
            decode_seconds += end - first
    return len(tokens), decode_tokens / decode_seconds, statistics.median(firsts) * 1000


def _dialog_latency(model: RadialogModel, image: Any, backends: list[str], n: int) -> None:
    """A report, then two follow-up questions, per backend: the follow-ups' latency is where
    llama.cpp's prefix reuse shows (the earlier turns stay in its KV cache)."""
    from radialog.chat import GenerationOptions, Session

    questions = ("Is there any Pleural Effusion?", "Summarize the report in one sentence.")
    print(f"\n{'dialog follow-up':22s} {'answer s':>8s}  (after a report; {n} new tokens max)")
    for backend in backends:
        model.generation_backend = backend
        session = Session(model, image, options=GenerationOptions(max_new_tokens=n))
        session.report()
        times = []
        for question in questions:
            t0 = time.perf_counter()
            session.ask(question)
            times.append(time.perf_counter() - t0)
        reused = ""
        if backend == "llamacpp":
            reused = f"  (last prompt: {model.llamacpp_decoder().stepper.reused} positions reused)"
        print(f"{backend:22s} {statistics.mean(times):8.2f}{reused}")


def _beside_competitor(image: Any, n: int, model: str) -> None:
    """One-shot `radialog report` (its own process, as a user runs it) while another process
    keeps one core busy: the default threads (the cores left free) against all cores. Threads
    beyond the free cores spin-wait for each other: on the 2-core development machine a report
    took 194 s with all cores and 14 s with the default."""
    import json
    import subprocess

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let the load show in /proc/stat
        print(f"\n{'beside a busy process':22s} {'wall s':>8s} {'total s':>8s} {'generate s':>10s}")
        for label, extra in (
            ("default threads", []),
            (f"--threads {cores}", ["--threads", str(cores)]),
        ):
            cmd = [sys.executable, "-m", "radialog", "report", str(image), "--json"]
            cmd += ["--model", model, "--max-new-tokens", str(n), *extra]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            wall = time.perf_counter() - t0
            timings = json.loads(out)["timings"]
            print(f"{label:22s} {wall:8.2f} {timings['total']:8.2f} {timings['generate']:10.2f}")
    finally:
        competitor.kill()
        competitor.wait()


def _warm_one_shot(image: Any, n: int, model: str, repeat: int) -> None:
    """Wall time of a one-shot `radialog report` through llama.cpp (its own process, warm
    cache): the lazy start (no torch LLM, no transformers/peft imports) against the eager
    one, which builds the torch LLM as before. Interleaved, so machine load hits both alike;
    the outputs must be the same."""
    import json
    import subprocess

    cmd = [sys.executable, "-m", "radialog", "report", str(image), "--json", "--model", model]
    cmd += ["--backend", "llamacpp", "--threads", "1", "--max-new-tokens", str(n)]
    variants = {"eager (torch LLM built)": "1", "lazy (default)": ""}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    reports: dict[str, set[str]] = {name: set() for name in variants}
    subprocess.run(cmd, capture_output=True, check=True)  # warm: export + lazy record
    for _ in range(repeat):
        for name, eager in variants.items():
            env = dict(os.environ, RADIALOG_EAGER_LLM=eager)
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            walls[name].append(time.perf_counter() - t0)
            payload = json.loads(out)
            payload.pop("timings")
            reports[name].add(json.dumps(payload, sort_keys=True))
    same = len(set().union(*reports.values())) == 1
    print(
        f"\n{'warm one-shot report':24s} {'wall s (median)':>15s} {'min':>6s} {'max':>6s}"
        f"   (llama.cpp, --threads 1, {n} new tokens, x{repeat}, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    for name, times in walls.items():
        print(f"{name:24s} {statistics.median(times):15.2f} {min(times):6.2f} {max(times):6.2f}")
    base, lazy = (statistics.median(t) for t in walls.values())
    print(f"eager / lazy: {base / lazy:.2f}x; same JSON (timings aside): {same}")


def _images() -> list[Any]:
    phantoms = [
        render_phantom(f, seed=i, size=512)
        for i, f in enumerate([["Cardiomegaly"], ["Pleural Effusion", "Edema"], []], start=1)
    ]
    return [example_image_path(), *phantoms]


def _measure_load(cfg_name: str) -> list[tuple[str, float]]:
    cfg = load_named_config(cfg_name)
    rows = []
    old = os.environ.get("RADIALOG_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RADIALOG_CACHE_DIR"] = tmp
        try:
            for label in ("LLM load, no cache (dequantise GGUF)", "LLM load, from cache"):
                t0 = time.perf_counter()
                load_llm(cfg.llm)
                rows.append((label, time.perf_counter() - t0))
        finally:
            if old is None:
                os.environ.pop("RADIALOG_CACHE_DIR", None)
            else:
                os.environ["RADIALOG_CACHE_DIR"] = old
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="radialog-mini")
    parser.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--measure-load", action="store_true", help="also time a cold GGUF load")
    parser.add_argument(
        "--no-competitor", action="store_true", help="skip the rows beside a busy process"
    )
    parser.add_argument(
        "--one-shot",
        action="store_true",
        help="only the warm one-shot report rows (lazy vs eager LLM load; 60 new tokens, x3)",
    )
    args = parser.parse_args()
    if args.one_shot:
        if not llamacpp_available():
            print("llama-cpp-python not installed: no one-shot llama.cpp rows (make llamacpp)")
            return 1
        _warm_one_shot(
            example_image_path(), args.max_new_tokens or 60, args.model, args.repeat or 3
        )
        return 0
    n = args.max_new_tokens or (32 if args.quick else 128)
    repeat = args.repeat or (1 if args.quick else 2)
    if args.threads:
        torch.set_num_threads(args.threads)

    load_rows = _measure_load(args.model) if args.measure_load else []
    t0 = time.perf_counter()
    model = RadialogModel.from_pretrained(args.model)
    load_rows.append(("RadialogModel.from_pretrained (warm cache)", time.perf_counter() - t0))

    options: list[tuple[str, FastOptions]] = [("fast fp32", FastOptions())]
    if _cpu_has_bf16() or model.device.type != "cpu":
        options.append(("fast bf16 weights", FastOptions(dtype=torch.bfloat16)))
    variants: list[tuple[str, FastDecoder | None]] = [("hf generate() fp32", None)]
    builds = []
    for name, opts in options:
        t = time.perf_counter()
        variants.append((name, decoder_for(model.llm, opts)))
        builds.append((f"build decoder: {name}", time.perf_counter() - t))
    if llamacpp_available():
        t = time.perf_counter()
        variants.append(("llama.cpp (GGUF+LoRA)", model.llamacpp_decoder()))
        builds.append(("build decoder: llama.cpp (export + load)", time.perf_counter() - t))
        t = time.perf_counter()
        q8 = llamacpp_decoder_for(model.llm, model.gguf_source(), LlamaCppOptions(weights="q8_0"))
        variants.append(("llama.cpp Q8_0 export", q8))
        builds.append(("build decoder: llama.cpp Q8_0 (export + load)", time.perf_counter() - t))
    else:
        print("llama-cpp-python not installed: no llama.cpp rows (make llamacpp)")

    images = _images()
    analyses = [model.analyse_image(img) for img in images]
    convs = [report_conversation(findings_text(a.predicted)) for a in analyses]
    tokens = [a.image_tokens[0] for a in analyses]
    singles = [
        model.prepare_inputs([c], [t], train=False) for c, t in zip(convs, tokens, strict=True)
    ]
    batch = model.prepare_inputs(convs, tokens, train=False)

    runner = Runner(model, n)
    for name, decoder in variants:  # warm-up (allocator, first-call paths)
        runner.run(name, decoder, singles[0], Stats())
    single = {name: Stats() for name, _ in variants}
    batched = {name: Stats() for name, _ in variants}
    for _ in range(repeat):
        for inputs in singles:
            for name, decoder in variants:
                runner.run(name, decoder, inputs, single[name])
        for name, decoder in variants:
            runner.run(name, decoder, batch, batched[name])

    # End to end, one image: read + preprocess + classifier + encoder + generation.
    e2e: dict[str, list[dict[str, float]]] = {"hf": [], "fast": []}
    if llamacpp_available():
        e2e["llamacpp"] = []
    for _ in range(repeat):
        for backend in e2e:
            model.generation_backend = backend
            report = model.generate_report(images[0], max_new_tokens=n)
            e2e[backend].append(report.timings)

    threads = torch.get_num_threads()
    print(
        f"model {args.model} (trained: {model.is_trained}), {threads} torch thread(s), "
        f"max_new_tokens {n}, {len(singles)} prompts x {repeat}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ref = single[variants[0][0]]
    ref_b = batched[variants[0][0]]
    print(
        f"\n{'variant':22s} {'decode tok/s':>12s} {'x hf':>6s} {'1st token ms':>12s} "
        f"{'batch tok/s':>11s} {'x hf':>6s} {'identical':>9s} {'agree':>6s} {'findings':>8s}"
    )
    decode = model.codec.decode
    for name, _ in variants:
        s, b = single[name], batched[name]
        same, agree = _agreement(s.outputs + b.outputs, ref.outputs + ref_b.outputs)
        changed = _findings_changed(s.outputs + b.outputs, ref.outputs + ref_b.outputs, decode)
        first = statistics.median(s.first_token) * 1000 if s.first_token else float("nan")
        print(
            f"{name:22s} {s.decode_tps:12.1f} {s.decode_tps / ref.decode_tps:6.2f} {first:12.0f} "
            f"{b.tps:11.1f} {b.tps / ref_b.tps:6.2f} "
            f"{same:>4d}/{len(s.outputs) + len(b.outputs):<4d} {agree:6.3f} {changed:8.3f}"
        )
    print("(findings: share of the 14 labeler findings that differ from generate()'s text)")
    source = model.gguf_source()
    if llamacpp_available() and source is not None:
        text = convs[0].render().replace("<image>", "")
        length, tps, first = _llamacpp_reference(source, text, n, threads, repeat)
        print(
            f"reference: llama-cpp-python Llama.generate() on {source.name}, {length}-token text "
            f"prompt, no image: decode {tps:.1f} tok/s, first token {first:.0f} ms"
        )
    print(f"\n{'end to end, one image':22s} {'total s':>8s}  stages (median s)")
    for backend, runs in e2e.items():
        keys = list(runs[0])
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        stages = " ".join(f"{k}={v:.3f}" for k, v in med.items() if k != "total")
        print(f"{backend:22s} {med['total']:8.2f}  {stages}")
    _dialog_latency(model, images[0], list(e2e), min(n, 48))
    if not args.no_competitor:
        _beside_competitor(example_image_path(), min(n, 60), args.model)
    if llamacpp_available():
        _warm_one_shot(example_image_path(), min(n, 60), args.model, repeat)
    print()
    for label, sec in load_rows + builds:
        print(f"{label:44s} {sec:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
