"""The one exception type users see.

Every failure caused by the user's input (a file, a flag, a config value, missing weights)
is raised as :class:`FastStyleError` with a single-line message that names the offending
thing and says how to fix it. The CLI prints that line and exits non-zero; anything else
that escapes is a bug and keeps its traceback.
"""


class FastStyleError(Exception):
    """A user-facing error: ``str(error)`` is one line naming the culprit and the fix."""
