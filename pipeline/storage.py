"""File I/O through Beam's `FileSystems`, so every path may be local or `gs://`.

(`tf.io.gfile` would also reach GCS, but not the GCS emulator that tests use, and Beam is what
stages and authenticates I/O on Dataflow workers.)
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_RAW = CompressionTypes.UNCOMPRESSED  # never guess a compression from a file's extension

try:  # present only with apache-beam[gcp], the only way a gs:// path can be read
    from google.api_core.exceptions import NotFound as _GcsNotFound
    _REMOTE_NOT_FOUND: tuple = (_GcsNotFound,)
except ImportError:
    _REMOTE_NOT_FOUND = ()  # `except ()` catches nothing


class PathEscapesRoot(ValueError):
    """A `file_name` from the annotations points outside `--images_root`."""


def read_bytes(path: str) -> bytes:
    """The file's bytes; FileNotFoundError if it does not exist, on any filesystem."""
    try:
        with FileSystems.open(path, compression_type=_RAW) as f:
            return f.read()
    except _REMOTE_NOT_FOUND as e:
        # Beam's GCS filesystem lets the client library's 404 (google.api_core NotFound, not an
        # OSError) escape for a missing object or bucket; callers tell a missing input from an
        # unreadable one by FileNotFoundError, as for local files.
        raise FileNotFoundError(f"{path}: no such file") from e


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes to a temporary name beside `path`, then renames: readers never see a partial file."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(tmp, compression_type=_RAW) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_image_path(images_root: str, file_name: str) -> str:
    """Joins an annotation's `file_name` to the images root, refusing paths that escape it."""
    normalized = posixpath.normpath(file_name.replace("\\", "/"))
    if normalized.startswith("/") or normalized == ".." or normalized.startswith("../"):
        raise PathEscapesRoot(f"file_name {file_name!r} escapes the images root {images_root!r}")
    return FileSystems.join(images_root, normalized)


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def ensure_dir(path: str) -> None:
    if not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def delete_tree(path: str) -> None:
    """Deletes a folder and what is in it (or a single file), if it exists."""
    if FileSystems.exists(path):
        FileSystems.delete([path])
    elif FileSystems.get_scheme(path) == "gs":
        # gs:// has no folders: a "folder" is a name prefix, `exists` is False for it, and its
        # objects would be left behind. Beam's GCS filesystem deletes every object under a
        # prefix when the path ends with "/" (a no-op when there is none); the slash also keeps
        # `out/_tmp_a` from taking `out/_tmp_ab` with it.
        FileSystems.delete([path.rstrip("/") + "/"])


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def match(pattern: str) -> list:
    """FileMetadata (path, size_in_bytes) of the files matching a glob; [] when none."""
    return FileSystems.match([pattern])[0].metadata_list


def delete_files(paths: list[str]) -> None:
    FileSystems.delete(paths)
