"""Logging: workers write to RUN/logs (shared storage on a cluster), never to stdout."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_worker_logging(log_dir: Path, stage: str) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{stage}-{socket.gethostname()}-{os.getpid()}.log"
    logger = logging.getLogger("datagen")
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path) for h in logger.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return path
