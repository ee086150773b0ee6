"""Logging: workers write to RUN/logs (shared storage on a cluster), never to stdout."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_worker_logging(log_dir: Path, stage: str) -> Path:
    path = log_dir / f"{stage}-{socket.gethostname()}-{os.getpid()}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError:
        handler = logging.NullHandler()  # no room for logs: the markers still say what failed
    logger = logging.getLogger("datagen")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # A full disk must not turn every log call into a traceback on stderr.
    logging.raiseExceptions = False
    return path
