"""Errors that are expected (bad input, missing files) and shown to users as one line."""


class DlrcError(Exception):
    """A problem with the user's input or environment; its message names patient, file and problem.

    The CLI prints it as ``dlrc <verb>: error: <message>`` with exit status 2, never a traceback.
    """


class DamagedEntry(ValueError):
    """A cache entry (a feature-store file, a memo entry) that cannot be read back or whose
    content fails its checksum: it is discarded and computed again, never used."""
