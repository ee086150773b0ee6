"""What a `--target-kept` run wants: kept samples per subject-count bucket (one bucket of every
count when only `run.target_kept` is given), read from the run's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datagen.config import RunConfig
from datagen.config.run import parse_buckets

ALL_SUBJECTS = (1, 10**6)


@dataclass(frozen=True)
class Target:
    buckets: list[tuple[int, int, int]]  # (fewest subjects, most, samples wanted), sorted

    @classmethod
    def of(cls, cfg: RunConfig) -> Target | None:
        run = cfg.run
        if run.target_buckets:
            return cls(parse_buckets(run.target_buckets))
        return cls([(*ALL_SUBJECTS, run.target_kept)]) if run.target_kept else None

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.buckets)

    def spec(self) -> dict[str, int]:
        """How markers record the target a cut was made for."""
        return {("all" if (lo, hi) == ALL_SUBJECTS else f"{lo}-{hi}"): n for lo, hi, n in self.buckets}

    def bucket_of(self, subjects: int) -> int | None:
        for b, (lo, hi, _) in enumerate(self.buckets):
            if lo <= subjects <= hi:
                return b
        return None

    def per_bucket(self, histogram: dict[int, int]) -> list[int]:
        counts = [0] * len(self.buckets)
        for subjects, n in histogram.items():
            b = self.bucket_of(subjects)
            if b is not None:
                counts[b] += n
        return counts

    def short(self, kept: list[int]) -> list[int]:
        return [max(0, n - k) for (_, _, n), k in zip(self.buckets, kept)]


def kept_histogram(marker: dict[str, Any]) -> dict[int, int]:
    """Samples kept per subject count by a final shard, as its final stage wrote it (before a cut)."""
    hist = (marker.get("target_cut") or {}).get("subjects_histogram", marker.get("subjects_histogram", {}))
    return {int(k): int(v) for k, v in hist.items()}
