"""What an export counts while it writes rows, for the dataset card written after them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ExportTally:
    """What the card needs from the rows, gathered while they are written (one pass)."""

    rows: int = 0
    models: dict[str, Counter] = field(default_factory=dict)  # stage -> model as recorded -> samples
    provenance: Counter = field(default_factory=Counter)  # (run_id, config_sha256, datagen_version)
    truth: int = 0
    sources: Counter = field(default_factory=Counter)  # ingested rows: (dataset, licence, citation) -> samples
    # Each row's own (width, height): ingested samples keep their source image's size, so a run's
    # rows need not share one, nor be the run config's run.width x run.height.
    sizes: Counter = field(default_factory=Counter)
    subjects: Counter = field(default_factory=Counter)  # subjects per row -> rows
    kinds: Counter = field(default_factory=Counter)  # source.kind (generated | ingested) -> rows
