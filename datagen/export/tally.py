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
