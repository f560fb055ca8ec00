"""Uploads, in memory only: the multipart body parsed without spooling, the image type sniffed, and
the image read by the project's one reader (:func:`pcbm.data.io.read_input_image`).

Starlette's form parser spools a file part over 1 MB to a temporary file on disk; an uploaded scan
must never touch the disk, so the body (bounded by the upload limit) is parsed here with
python-multipart's streaming parser into memory. The image itself is handed to the reader as an
anonymous in-memory file (``memfd_create``, Linux: RAM only, gone when closed), so PNG, JPEG and
DICOM go through exactly the code ``pcbm predict`` runs: the same clear errors, a DICOM's first
frame with burned-in text masked, its header de-identified in memory and only the pixel spacing
kept. Error messages name the upload ``upload``, never a file descriptor or a client's file name.

Example:
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8), None)
    'PNG'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from pcbm.data.io import LoadedImage, read_input_image
from pcbm.errors import InputError

KINDS = ("PNG", "JPEG", "DICOM")
DECLARED = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG",
            "application/dicom": "DICOM", "application/dicom+binary": "DICOM"}
MAX_PARTS = 16
MAX_FIELD_BYTES = 4096  # a text field (pixel_spacing_mm, set, erase) longer than this is refused


class ApiError(Exception):
    """A request the service refuses: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Form:
    """A parsed multipart form: the ``image`` part and the text fields (each may repeat)."""

    image: bytes | None = None
    image_type: str | None = None  # the part's declared Content-Type
    fields: dict[str, list[str]] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        if len(values) > 1:
            raise ApiError(400, f"form field {name!r} given {len(values)} times; give it once")
        return values[0] if values else None


def parse_multipart(body: bytes, content_type: str | None) -> Form:
    """The form in ``body`` (already bounded by the upload limit).

    Raises:
        ApiError: 415 when it is not multipart/form-data; 400 for a malformed body, too many
            parts, a text field too long or a second image.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        shown = (content_type or "none")[:80]
        raise ApiError(415, f"send multipart/form-data with the image in the field 'image' (Content-Type was {shown!r})")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "multipart/form-data without a valid boundary")
    form = Form()
    state: dict[str, object] = {"headers": {}, "name": None, "buf": [], "field": b"", "parts": 0}

    def on_part_begin() -> None:
        state["parts"] = int(state["parts"]) + 1  # type: ignore[call-overload]
        if int(state["parts"]) > MAX_PARTS:  # type: ignore[call-overload]
            raise ApiError(400, f"more than {MAX_PARTS} parts in the form")
        state.update(headers={}, name=None, buf=[], field=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] = bytes(state["field"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        h: dict[bytes, bytes] = state["headers"]  # type: ignore[assignment]
        key = bytes(state["field"]).lower()  # type: ignore[arg-type]
        h[key] = h.get(key, b"") + data[start:end]

    def on_header_end() -> None:
        state["field"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf: list[bytes] = state["buf"]  # type: ignore[assignment]
        buf.append(data[start:end])

    def on_part_end() -> None:
        h: dict[bytes, bytes] = state["headers"]  # type: ignore[assignment]
        _, disp = parse_options_header(h.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        data = b"".join(state["buf"])  # type: ignore[arg-type]
        if name == "image":
            if form.image is not None:
                raise ApiError(400, "more than one 'image' part; send one image per request")
            form.image = data
            form.image_type = h.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower() or None
        elif b"filename" in disp:
            raise ApiError(400, f"unexpected file field {name[:40]!r}: send the image as the multipart field 'image'")
        elif name:
            if len(data) > MAX_FIELD_BYTES:
                raise ApiError(400, f"form field {name[:40]!r} is longer than {MAX_FIELD_BYTES} bytes")
            try:
                form.fields.setdefault(name, []).append(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ApiError(400, f"form field {name[:40]!r} is not UTF-8 text") from None

    callbacks = {"on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
                 "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except ApiError:
        raise
    except Exception as e:  # noqa: BLE001 - python-multipart raises several kinds on malformed bodies
        raise ApiError(400, f"malformed multipart body ({type(e).__name__})") from None
    return form


def sniff(data: bytes, declared: str | None) -> str:
    """The upload's kind from its first bytes: 'PNG', 'JPEG' or 'DICOM'.

    Raises:
        ApiError: 415 for another type; 400 when it claims to be one of ours (by its Content-Type)
            but does not start like one (corrupt or truncated).
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "DICOM"
    claimed = DECLARED.get((declared or "").lower())
    if not data:
        raise ApiError(400, "the image is empty (0 bytes)")
    if claimed is not None:
        what = {"PNG": "a PNG signature", "JPEG": "a JPEG marker", "DICOM": "the DICOM 'DICM' marker after its "
                "128-byte preamble (DICOM Part 10)"}[claimed]
        raise ApiError(400, f"corrupt image: declared {declared} but it does not start with {what}")
    shown = f" (declared {declared[:60]!r})" if declared else ""
    raise ApiError(415, f"unsupported image type{shown}: send PNG, JPEG or DICOM")


def quiet_readers() -> None:
    """Keep the DICOM reader's warnings out of the logs: pydicom's warnings quote header values
    (a malformed UID, a name) of the upload. Process-wide; the server calls it once per app."""
    import logging
    import warnings

    logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # its warnings quote body bytes
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")


def read_upload(data: bytes, max_pixels: int) -> LoadedImage:
    """The uploaded image, read in memory by :func:`~pcbm.data.io.read_input_image` (see the module docstring).

    Raises:
        InputError: the reader's reason (corrupt, truncated, too large, too small, …), naming 'upload'.
    """
    if not hasattr(os, "memfd_create"):  # pragma: no cover - Linux has it
        raise InputError("this server reads uploads through memfd_create, which needs Linux")
    fd = os.memfd_create("pcbm-upload", os.MFD_CLOEXEC)
    path = f"/proc/self/fd/{fd}"
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        try:
            loaded = read_input_image(path, max_pixels, find_spacing=False)
        except InputError as e:
            raise InputError(str(e).replace(path, "upload")) from None
    finally:
        os.close(fd)
    notes = [n.replace(path, "upload") for n in loaded.notes]
    return LoadedImage(loaded.image, notes, loaded.pixel_spacing_mm, loaded.spacing_source, "upload")
