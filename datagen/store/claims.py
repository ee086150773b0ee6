"""The run-wide registry of prompt claims under RUN/: which sample owns each normalised prompt."""

from __future__ import annotations

import os
from pathlib import Path

from datagen.recipe.diversity import prompt_hash


class PromptRegistry:
    """Run-wide claims on normalised prompts: the first sample to claim one keeps it.

    One file per prompt hash under the run directory, holding the key that claimed it. The key
    is written to a private file first, then hard-linked to the claim's name: the link either
    creates the claim complete or fails because it exists, atomically on a local or shared
    POSIX filesystem, so workers on every node agree and no one ever reads a half-made claim.
    (Creating the claim with O_EXCL and then writing it left a moment where another worker
    read it empty.) A sample that claims again (a retried shard) finds its own key and keeps it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def claim(self, text: str, key: str) -> str:
        """The key that owns this prompt: `key` itself if it is the first to claim it."""
        h = prompt_hash(text)
        path = self.root / h[:2] / h
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = path.with_name(f".{h}.{key}.{os.getpid()}.tmp")
        mine.write_text(key, encoding="ascii")
        try:
            os.link(mine, path)
            return key
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        finally:
            mine.unlink(missing_ok=True)
