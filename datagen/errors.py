"""Errors the CLI turns into one line and a non-zero exit, with no traceback."""


class UserError(Exception):
    """Bad input from the user: a config, a flag, a path. The message is the whole report."""


class BackendUnavailable(UserError):
    """A config names a backend this version of datagen does not provide (yet)."""


class ShardReadError(Exception):
    """A committed shard that cannot be read back (truncated, corrupt, unsafe member name)."""
