"""The run-wide registry of prompt claims under RUN/: which samples claim each normalised prompt.

The lowest sample index among a prompt's claimants owns it, so the winner does not depend on
which worker got there first (datagen.pipeline.dedup says when the answer is final).
"""

from __future__ import annotations

import os
from pathlib import Path

from datagen.recipe.diversity import prompt_hash


def key_index(key: str) -> int:
    """A sample key's run index (`<shard>_<index>`): ordered as numbers, not text, so a run past
    a million samples (a wider field) still ranks its claimants right."""
    return int(key.rsplit("_", 1)[1])


class PromptRegistry:
    """Run-wide claims on normalised prompts: the lowest-index claimant owns one.

    A prompt is a directory named by its hash; each claimant is an empty file in it named by
    its sample key. Creating an empty file is atomic on a local or shared POSIX filesystem,
    so there is no half-written claim to read, and claiming again (a retried shard, a resumed
    run) finds the file already there: claims are idempotent and never removed.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, text: str) -> Path:
        h = prompt_hash(text)
        return self.root / h[:2] / h

    def claim(self, text: str, key: str) -> str:
        """Record `key` as a claimant of this prompt; the owner among the claims made so far."""
        d = self._dir(text)
        d.mkdir(parents=True, exist_ok=True)
        (d / key).touch()
        return self._lowest(d)

    def owner(self, text: str) -> str | None:
        """The lowest-index claimant so far, None if no sample claims this prompt."""
        d = self._dir(text)
        return self._lowest(d) if d.is_dir() else None

    @staticmethod
    def _lowest(d: Path) -> str:
        # Dot names are not claims (a filesystem's or a tool's leftovers).
        return min((n for n in os.listdir(d) if not n.startswith(".")), key=key_index)
