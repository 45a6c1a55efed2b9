"""METEOR 1.5 through pycocoevalcap's jar, one Java process per Python process, reused.

pycocoevalcap's ``Meteor`` starts a JVM (and loads the 60 MB paraphrase table) per instance and
does one blocking round trip per segment. Here the process starts once (lazily, then shared),
segments are streamed through the pipe by a writer thread while the reader collects replies,
and the aggregate score is computed by the same ``EVAL`` command, so numbers are identical to
``Meteor().compute_score``.

``aggregate_from_stats`` re-implements Meteor's ``computeMetrics`` on summed statistics (read
from the 1.5 jar: English defaults alpha=0.85, beta=0.2, gamma=0.6, delta=0.75, module weights
1.0/0.6/0.8/0.6). The bootstrap uses it to score thousands of resamples without the JVM; a test
checks it against the jar's own aggregate.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from radialog.errors import RadialogError

log = logging.getLogger(__name__)

METEOR_JAR = "meteor-1.5.jar"
# Meteor 1.5, language en, task default ("-l en -norm" as pycocoevalcap runs it).
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.2, 0.6, 0.75
MODULE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase
STATS_LENGTH = 23


class JavaNotFoundError(RadialogError):
    """METEOR needs a Java runtime (``java`` on PATH)."""


class MeteorError(RadialogError):
    """The METEOR Java process failed."""


def _meteor_dir() -> Path:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MeteorError(
            "pycocoevalcap is not installed; install it with `pip install pycocoevalcap==1.2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "meteor"


class MeteorProcess:
    """A running ``meteor-1.5.jar -stdio`` process. Thread-safe; use ``get_meteor()`` to share one."""

    def __init__(self) -> None:
        java = shutil.which("java")
        if java is None:
            raise JavaNotFoundError(
                "METEOR needs Java (the pycocoevalcap METEOR 1.5 jar): install a JRE, e.g. "
                "`apt-get install openjdk-17-jre-headless`, or skip METEOR"
            )
        cwd = _meteor_dir()
        if not (cwd / METEOR_JAR).is_file():
            raise MeteorError(f"{cwd / METEOR_JAR} is missing; reinstall pycocoevalcap==1.2")
        # Java's stderr goes to a file: a PIPE nobody reads could fill up and block the JVM.
        self._stderr = tempfile.TemporaryFile()
        cmd = [java, "-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
        log.debug("starting METEOR: %s (cwd %s)", " ".join(cmd), cwd)
        self._proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._lock = threading.Lock()

    def _fail(self, what: str) -> MeteorError:
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-2000:]
        return MeteorError(f"METEOR {what} (java exit code {self._proc.poll()}): {tail.strip()}")

    def _exchange(self, lines: Sequence[str], n_replies: int) -> list[str]:
        """Write lines (from a thread, so a full pipe cannot deadlock us) and read n replies."""
        payload = "".join(line + "\n" for line in lines).encode()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(payload)
                self._proc.stdin.flush()
            except BaseException as exc:  # reported by the reader below
                errors.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert self._proc.stdout is not None
        replies = []
        for _ in range(n_replies):
            line = self._proc.stdout.readline()
            if not line:
                raise self._fail("stopped unexpectedly")
            replies.append(line.decode().strip())
        writer.join()
        if errors:
            raise self._fail(f"could not be written to ({errors[0]})")
        return replies

    def segment_stats(
        self,
        hypotheses: Sequence[str],
        references: Sequence[Sequence[str]],
        *,
        on_progress: Callable[[int], None] | None = None,
        chunk: int = 500,
    ) -> list[str]:
        """Meteor's sufficient statistics line for each (hypothesis, references) pair.

        ``on_progress(k)`` is called after each chunk of k segments.
        """
        lines = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            # Same sanitising as pycocoevalcap's Meteor._stat.
            hyp = hyp.replace("|||", "").replace("  ", " ")
            lines.append(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
        out: list[str] = []
        with self._lock:
            for start in range(0, len(lines), chunk):
                part = lines[start : start + chunk]
                out.extend(self._exchange(part, len(part)))
                if on_progress is not None:
                    on_progress(len(part))
        return out

    def evaluate(self, stats: Sequence[str]) -> tuple[float, list[float]]:
        """(corpus score, segment scores) from statistics lines, as pycocoevalcap returns them."""
        line = "EVAL" + "".join(f" ||| {s}" for s in stats)
        with self._lock:
            replies = self._exchange([line], len(stats) + 1)
        return float(replies[-1]), [float(r) for r in replies[:-1]]

    def score(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
    ) -> tuple[float, list[float]]:
        return self.evaluate(self.segment_stats(hypotheses, references))

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.close()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


_shared: MeteorProcess | None = None
_shared_lock = threading.Lock()


def get_meteor() -> MeteorProcess:
    """The process-wide METEOR process, started on first use and closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._proc.poll() is not None:
            _shared = MeteorProcess()
            atexit.register(_shared.close)
        return _shared


def additive_stats(lines: Sequence[str]) -> np.ndarray:
    """Statistics lines -> array (N, 23) whose column sums are Meteor's aggregate statistics.

    Meteor's ``MeteorStats.addStats`` skips the chunk count of a segment that matches perfectly
    (every word matched, one chunk), so those chunks are zeroed here.
    """
    arr = np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64)
    if arr.size and arr.shape[1] != STATS_LENGTH:
        raise MeteorError(
            f"unexpected METEOR statistics with {arr.shape[1]} fields (expected {STATS_LENGTH})"
        )
    arr = arr.reshape(-1, STATS_LENGTH)
    stages = arr[:, 4:20].reshape(-1, 4, 4)
    test_matches = stages[:, :, 0].sum(1) + stages[:, :, 2].sum(1)
    ref_matches = stages[:, :, 1].sum(1) + stages[:, :, 3].sum(1)
    perfect = (test_matches == arr[:, 0]) & (ref_matches == arr[:, 1]) & (arr[:, 20] == 1)
    arr[perfect, 20] = 0.0
    return arr


def aggregate_from_stats(totals: np.ndarray) -> np.ndarray:
    """Meteor's computeMetrics on summed statistics; ``totals`` is (..., 23), result (...)."""
    t = np.asarray(totals, dtype=np.float64)
    test_len, ref_len, test_fn, ref_fn = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
    stages = t[..., 4:20].reshape(
        *t.shape[:-1], 4, 4
    )  # per module: test/ref content, test/ref function
    chunks, test_word_matches, ref_word_matches = t[..., 20], t[..., 21], t[..., 22]
    test_matches_total = stages[..., 0].sum(-1) + stages[..., 2].sum(-1)
    ref_matches_total = stages[..., 1].sum(-1) + stages[..., 3].sum(-1)
    test_wlen = DELTA * (test_len - test_fn) + (1 - DELTA) * test_fn
    ref_wlen = DELTA * (ref_len - ref_fn) + (1 - DELTA) * ref_fn
    # Accumulated in Java's order: content for each module, then function for each module.
    test_wm = np.zeros_like(test_len)
    ref_wm = np.zeros_like(ref_len)
    for i, w in enumerate(MODULE_WEIGHTS):
        test_wm = test_wm + stages[..., i, 0] * w * DELTA
    for i, w in enumerate(MODULE_WEIGHTS):
        ref_wm = ref_wm + stages[..., i, 1] * w * DELTA
    for i, w in enumerate(MODULE_WEIGHTS):
        test_wm = test_wm + stages[..., i, 2] * w * (1 - DELTA)
    for i, w in enumerate(MODULE_WEIGHTS):
        ref_wm = ref_wm + stages[..., i, 3] * w * (1 - DELTA)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = test_wm / test_wlen
        recall = ref_wm / ref_wlen
        fmean = 1.0 / ((1 - ALPHA) / precision + ALPHA / recall)
        perfect = (test_matches_total == test_len) & (ref_matches_total == ref_len) & (chunks == 1)
        frag = np.where(perfect, 0.0, chunks / ((test_word_matches + ref_word_matches) / 2.0))
        penalty = GAMMA * np.power(frag, BETA)
        score = fmean * (1 - penalty)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))
