"""Per-stage progress of a run, read from the completion markers it commits.

Markers live on the run's storage, so this works the same for local workers and for a
cluster. Rich bars on a terminal, plain lines otherwise (logs, CI).
"""

from __future__ import annotations

import sys
import threading
import time

from datagen.config import RunConfig
from datagen.pipeline.markers import RunMarkers
from datagen.pipeline.resume import ShardJob
from datagen.store.paths import RunPaths


class ProgressWatcher:
    def __init__(self, cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], interval: float = 0.5) -> None:
        self.markers = RunMarkers(cfg, paths)
        self.paths = paths
        self.interval = interval
        self.stages = [s for s in cfg.stages.order if any(s in j.run for j in jobs)]
        self.todo = {s: [j.shard for j in jobs if s in j.run] for s in self.stages}
        self.start = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def counts(self) -> dict[str, tuple[int, int]]:
        """stage -> (finished or failed, total) for this run's work."""
        out = {}
        for stage, shards in self.todo.items():
            finished = sum(self._finished(stage, shard) for shard in shards)
            out[stage] = (finished, len(shards))
        return out

    def _finished(self, stage: str, shard: int) -> bool:
        for marker in (self.markers.marker_path(stage, shard), self.paths.failed_marker(stage, shard)):
            try:
                if marker.stat().st_mtime >= self.start - 1:
                    return True
            except OSError:
                pass
        return False

    def __enter__(self) -> ProgressWatcher:
        target = self._rich if sys.stderr.isatty() else self._plain
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _plain(self) -> None:
        last: dict[str, tuple[int, int]] = {}
        while True:
            stopping = self._stop.wait(self.interval * 4)
            now = self.counts()
            changed = [f"{s} {d}/{t}" for s, (d, t) in now.items() if now[s] != last.get(s)]
            if changed:
                print(f"[{time.time() - self.start:6.1f}s] shards done: " + ", ".join(changed), file=sys.stderr, flush=True)
            last = now
            if stopping:
                return

    def _rich(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False) as bar:
            tasks = {s: bar.add_task(s, total=len(self.todo[s])) for s in self.stages}
            while True:
                stopping = self._stop.wait(self.interval)
                for stage, (done, _) in self.counts().items():
                    bar.update(tasks[stage], completed=done)
                if stopping:
                    return

