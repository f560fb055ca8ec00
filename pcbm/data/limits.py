"""How large an image the readers decode: one place for the limits :mod:`pcbm.data.io` (image
files) and :mod:`pcbm.data.dicom` (DICOM) both check from the header, before any decoding.

Example:
    >>> MAX_PIXELS, MAX_FILE_BYTES == 8 * MAX_PIXELS
    (40000000, True)
"""

from __future__ import annotations

# 40 megapixels: 5x the largest ultrasound frames (4K monitors, 3840x2160 = 8.3 MP) and above any
# scanner export, yet small enough that decoding stays under ~1 GB even as 16-bit RGBA with the
# float copies conversion makes (an 8000x8000 PNG took 8.4 GB before this limit).
MAX_PIXELS = 40_000_000
# Bytes of an uncompressed 16-bit RGBA image at MAX_PIXELS: no image file within the limit is larger.
MAX_FILE_BYTES = 8 * MAX_PIXELS
# Every frame of a DICOM cine read at once (pcbm data etl, frames=all; decoded a frame at a time):
# 400 megapixels, 0.4 GB as 8-bit frames, e.g. 500 frames of 1024x768 (17 s at 30 frames/s).
MAX_CINE_PIXELS = 10 * MAX_PIXELS
