"""Map a plain function over items on local Ray tasks, results in item order.

For work that is independent per item and writes its own output (rendering the pages of one
final shard for `datagen browse`): `fn` and the items are pickled to the workers, and what
`fn` returns comes back through the object store, so it should be small. Ray is imported
only when more than one worker has something to do; with one worker, or one item, `fn` runs
in this process and Ray never starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from datagen.errors import UserError

T = TypeVar("T")
R = TypeVar("R")


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def ray_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """[fn(item) for item in items], run on up to `workers` Ray tasks of one CPU each.

    Starts a local Ray (`workers` CPUs) unless one is running, and stops it afterwards if it
    started it: `fn` writes its output where this process can read it. At most `workers` tasks are in flight, so a Ray that was already running with
    more CPUs is held to `workers` too. A task is not retried (`fn` may have written half its
    output); the first failure cancels the rest and is raised here, a datagen UserError raised
    in a worker as the same one line."""
    items = list(items)
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return [fn(item) for item in items]
    import ray

    from datagen.pipeline.ray_runner import init_ray, shutdown_ray, user_error_message

    started = not ray.is_initialized()
    init_ray(None, num_cpus=workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_apply)
        fn_ref = ray.put(fn)  # pickled once, not once per item
        results: list[Any] = [None] * len(items)
        running: dict[Any, int] = {}
        upcoming = iter(enumerate(items))
        try:
            while True:
                for i, item in upcoming:
                    running[task.remote(fn_ref, item)] = i
                    if len(running) >= workers:
                        break
                if not running:
                    return results
                [ready], _ = ray.wait(list(running), num_returns=1)
                results[running.pop(ready)] = ray.get(ready)
        except Exception as e:
            _drop(running)
            message = user_error_message(e)
            if message is None:
                raise
            raise UserError(message) from None
    finally:
        if started:
            shutdown_ray()


def _drop(refs: dict[Any, int]) -> None:
    """Cancel the tasks still running after a failure and collect what they end with: Ray prints
    an "unhandled error" for each failed result nobody read, noise beside the one error raised."""
    import ray

    for ref in refs:
        ray.cancel(ref, force=True)
    for ref in refs:
        try:
            ray.get(ref)
        except ray.exceptions.RayError:
            pass  # cancelled, or failed too: only the first failure is reported
