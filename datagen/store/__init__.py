"""Bytes under RUN/: the run layout, tar shards (one reader, one atomic writer), the member codec,
the in-flight sample between stages, output guards, and the prompt-claim registry."""
