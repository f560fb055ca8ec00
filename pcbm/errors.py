"""Errors for bad input. The CLI prints these as one clear line and exits non-zero."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a missing or unreadable file, a malformed CSV, an unknown name, ….

    The message names the file (and line, for CSVs) and what is wrong.
    """
