"""The live report: ``EXPERIMENT/report.html`` rewritten every few seconds while it runs.

A driver (``tune``, ``scale``, ``compare``) wraps its work in :func:`live_report`; a watcher
elsewhere (another machine, a cluster job's experiment on shared storage) runs :func:`watch`
(``kanplatform report --watch``). Both only read what the experiment's files hold -- its
tables and each run directory's ``metrics.json``/``live.json`` -- so they show the same page.
Each rewrite is atomic and happens only when a record changed; while the experiment runs the
page says so and reloads itself; the last write, when it ends, is a static page::

    from kanplatform.tracking.live import live_report

    with live_report(experiment_dir):   # prints where the page is
        run_the_experiment()            # the page follows it; at the end: the final page
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kanplatform.tracking.rundata import RUN_MARKERS, SKIP_DIRS

DEFAULT_EVERY_S = 5.0
# The page may take at most this share of one core: after a rewrite that cost c seconds of
# CPU the next check waits max(every_s, c * (1 / share - 1)). Drawing a study's page is
# ~1-3 s CPU, and the trainings it reports on need the cores more.
MAX_CPU_SHARE = 0.1
TABLES = ("search.json", "trials.json", "trials.csv", "scaling.json", "compare.json",
          "study.yaml")
FINAL_TABLES = ("trials.json", "scaling.json", "compare.json")

_ACTIVE: list[LiveReport] = []  # live reports of this process (an outer one covers nested)
_LOCK = threading.Lock()


def _walk(root: Path, depth: int = 4) -> Iterator[Path]:
    """Every run-record file and table under ``root`` (what a page is made of)."""
    for name in (*TABLES, *RUN_MARKERS):
        if (root / name).is_file():
            yield root / name
    for sub in ("stops",):
        if (root / sub).is_dir():
            yield from sorted((root / sub).glob("*.json"))
    if depth == 0:
        return
    try:
        subs = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return
    for d in subs:
        if d.name not in SKIP_DIRS and not d.name.startswith("."):
            yield from _walk(d, depth - 1)


def signature(root: str | Path) -> tuple[tuple[str, int, int], ...]:
    """``(path, mtime_ns, size)`` of every record under ``root``: a change means a new page."""
    out = []
    for p in _walk(Path(root)):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def experiment_done(root: str | Path) -> bool:
    """Whether the experiment at ``root`` has ended, from its files alone.

    Ended: no run directory is still training (each has ``metrics.json``), and the final
    table it writes last (``trials.json``, ``scaling.json`` or ``compare.json``) is at least
    as new as every run's ``metrics.json``. A single run directory: it has ``metrics.json``.
    """
    from kanplatform.tracking.rundata import find_runs

    root = Path(root)
    runs = find_runs(root)
    if runs == [root]:
        return (root / "metrics.json").is_file()
    if not runs or any(not (r / "metrics.json").is_file() for r in runs):
        return False
    newest = max((r / "metrics.json").stat().st_mtime_ns for r in runs)
    tables = [root / t for t in FINAL_TABLES if (root / t).is_file()]
    return bool(tables) and max(t.stat().st_mtime_ns for t in tables) >= newest


class LiveReport:
    """Rewrites the report of ``root`` from a background thread while an experiment runs.

    Args:
        root: the experiment (or run) directory.
        every_s: seconds between checks; the page is rewritten when a record changed.
        out: the HTML file (default ``root/report.html``).
        on_tick: called with this object after each rewrite (e.g. to log progress to W&B);
            its errors are warnings, never the experiment's.
    """

    def __init__(self, root: str | Path, every_s: float = DEFAULT_EVERY_S,
                 out: str | Path | None = None,
                 on_tick: Callable[[LiveReport], Any] | None = None,
                 title: str | None = None) -> None:
        self.root = Path(root)
        self.title = title
        self.every_s = float(every_s)
        self.out = Path(out) if out is not None else self.root / "report.html"
        self.on_tick = on_tick
        self.writes = 0
        self.error: str | None = None
        self._seen: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def covers(self, path: str | Path) -> bool:
        """Whether ``path`` is this report's directory or inside it."""
        p, r = Path(path).resolve(), self.root.resolve()
        return p == r or r in p.parents

    def tick(self, *, live: bool = True, force: bool = False) -> bool:
        """Rewrite the page if a record changed (``force``: anyway); True when written."""
        from kanplatform.tracking.report import write_report

        seen = signature(self.root)
        if not force and seen == self._seen:
            return False
        try:
            write_report(self.root, self.out, title=self.title,
                         live_every=self.every_s if live else None)
        except FileNotFoundError:
            return False  # nothing to show yet (a study before its first run)
        except Exception as err:  # noqa: BLE001 - a page is never worth an experiment
            self._warn(f"live report not rewritten ({type(err).__name__}: {err})")
            return False
        self._seen = seen
        self.writes += 1
        if self.on_tick is not None:
            try:
                self.on_tick(self)
            except Exception as err:  # noqa: BLE001
                self._warn(f"live report hook failed ({type(err).__name__}: {err})")
        return True

    def _warn(self, message: str) -> None:
        if message != self.error:
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        self.error = message

    def paced_tick(self) -> float:
        """:meth:`tick`, then the seconds to wait before the next one: ``every_s``, or
        longer after a costly rewrite (:data:`MAX_CPU_SHARE` of one core at most)."""
        start = time.thread_time()
        self.tick()
        return max(self.every_s, (time.thread_time() - start) * (1.0 / MAX_CPU_SHARE - 1.0))

    def _loop(self) -> None:
        wait = self.every_s
        while not self._stop.wait(wait):
            wait = self.paced_tick()

    def start(self) -> LiveReport:
        """Write the page now, then keep it current from a daemon thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.tick(force=True)
        self._thread = threading.Thread(target=self._loop, name="kanplatform-live-report",
                                        daemon=True)
        self._thread.start()
        with _LOCK:
            _ACTIVE.append(self)
        return self

    def stop(self, final: bool = True) -> Path | None:
        """Stop the thread; with ``final``, write the static page (no reload). Returns it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        with _LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        if final and self.tick(live=False, force=True):
            return self.out
        return self.out if self.out.is_file() else None


def active_for(path: str | Path) -> LiveReport | None:
    """The live report of this process that already covers ``path``, if any."""
    with _LOCK:
        return next((r for r in _ACTIVE if r.covers(path)), None)


@contextlib.contextmanager
def live_report(root: str | Path, every_s: float = DEFAULT_EVERY_S, *,
                out: str | Path | None = None,
                on_tick: Callable[[LiveReport], Any] | None = None,
                say: Callable[[str], Any] | None = print) -> Iterator[LiveReport | None]:
    """Keep the report of ``root`` live while the ``with`` body runs; write the final page
    at the end (also when the body fails or is interrupted).

    Nested inside another live report covering ``root`` (a study's search), it does nothing
    and yields None: the outer experiment's page shows the runs.

    Args:
        root: the experiment directory (created if missing).
        every_s: seconds between checks.
        out: the HTML file (default ``root/report.html``).
        on_tick: see :class:`LiveReport`.
        say: where the page's path is announced (None: silent).
    """
    if active_for(root) is not None:
        yield None
        return
    report = LiveReport(root, every_s, out, on_tick).start()
    if say is not None:
        say(f"live report: {report.out}  (rewritten while it runs, at most every "
            f"{report.every_s:g} s; open it in a browser)")
    try:
        yield report
    finally:
        report.stop(final=True)


def watch(root: str | Path, every_s: float = DEFAULT_EVERY_S, *, out: str | Path | None = None,
          title: str | None = None, say: Callable[[str], Any] | None = print,
          timeout_s: float | None = None) -> Path | None:
    """``kanplatform report --watch``: keep the page of an experiment running elsewhere current
    until it ends (:func:`experiment_done`), Ctrl-C or ``timeout_s``; then the static page.

    Returns:
        The page written, or None when the directory never held anything to show.
    """
    report = LiveReport(root, every_s, out, title=title)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    if say is not None:
        say(f"watching {report.root}: {report.out} is rewritten, at most every {every_s:g} s, "
            "until the experiment ends (Ctrl-C stops watching)")
    try:
        while not experiment_done(report.root):
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(report.paced_tick())
    except KeyboardInterrupt:
        pass
    return report.stop(final=True)
