"""Errors that the command line prints as one readable line."""


class FerKerasError(Exception):
    """A problem with the user's input (file, option, data) that they can fix.

    The CLI prints ``str(error)`` on one line and exits with status 2 instead of
    showing a traceback.
    """
