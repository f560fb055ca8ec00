"""A strict JPEG decode: libjpeg's "Corrupt JPEG data" warnings become a refusal, not grey garbage.

libjpeg recovers from damaged entropy-coded data (a zeroed or overwritten middle, a missing restart
marker) by filling the rest of the image with flat grey, prints a warning to the C ``stderr`` and
returns success; OpenCV passes the image on and Pillow never raises for it. A frame decoded that
way looks like a frame and is classified like one, so :func:`imdecode` reads those warnings (the
C ``stderr`` is pointed at a temporary file for the duration of the decode, under a lock) and
:func:`pcbm.data.io.decode_image` refuses the file as corrupt.

Refused: every libjpeg warning about the data ("Corrupt JPEG data: …", "Premature end of JPEG
file", "Invalid SOS parameters", "Inconsistent progression sequence", …) except a few extraneous
bytes just before the end marker (0xd9), which some encoders write after a complete image. Anything
else printed meanwhile (another thread's output) is written back to ``stderr``.

Example:
    >>> import numpy as np
    >>> ok, buf = cv2.imencode(".jpg", np.full((32, 32), 128, np.uint8))
    >>> image, problem = imdecode(buf)
    >>> image.shape, problem
    ((32, 32), None)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading

import cv2
import numpy as np

_LOCK = threading.Lock()  # one decode at a time may own the C stderr
_LIBJPEG = re.compile(r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent "
                      r"progression sequence|Application transferred too few scanlines)", re.IGNORECASE)
_HARMLESS = re.compile(r"extraneous bytes before marker 0xd9", re.IGNORECASE)


def imdecode(data: np.ndarray, flags: int = cv2.IMREAD_UNCHANGED) -> tuple[np.ndarray | None, str | None]:
    """``cv2.imdecode(data, flags)`` of a JPEG and the first libjpeg warning that means corrupt data
    (None when there was none); see the module docstring."""
    with _LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            arr = cv2.imdecode(data, flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        printed = tmp.read().decode("utf-8", "replace")
    problems, other = [], []
    for line in printed.splitlines():
        (problems if _LIBJPEG.match(line.strip()) else other).append(line)
    if other:
        os.write(2, ("\n".join(other) + "\n").encode())
    bad = [p.strip() for p in problems if not _HARMLESS.search(p)]
    return arr, (bad[0] if bad else None)
