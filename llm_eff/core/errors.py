"""Error types. A `UserError` is a mistake the user can fix: the CLI prints it as one line."""


class UserError(Exception):
    """A bad path, unknown name, malformed file or missing key: shown as one clear line."""


class BackendError(Exception):
    """A model backend failed for a reason other than the user's input."""


class SandboxError(Exception):
    """The sandbox itself failed (not the program in it): no attempt is recorded."""
