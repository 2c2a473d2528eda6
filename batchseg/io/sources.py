"""Discover the images of a collection: a directory, a glob or a manifest (txt/CSV).

Nothing here reads pixels. The result is a deterministic list sorted by image id.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from batchseg.core.refcolumns import RefColumns, sorted_unique_columns
from batchseg.core.refs import ImageRef, paused_gc
from batchseg.errors import InputError
from batchseg.io.formats import IMAGE_SUFFIXES, escape_name, is_zarr
from batchseg.io.manifest_columns import read_csv_columns

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "ImageRef", "discover", "local_uri", "paused_gc"]

MANIFEST_SUFFIXES = frozenset({".txt", ".csv"})
_GLOB_CHARS = set("*?[")


#: ``skip(folder)``: whether discovery leaves a folder out (and does not walk into it).
FolderFilter = Callable[[str], bool]


def discover(
    source: str, *, follow_links: bool = False, skip: FolderFilter | None = None
) -> Sequence[ImageRef]:
    """Images named by ``source`` (directory, glob or manifest), sorted by image id.

    ``source`` may be an fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``file://...``):
    a prefix is listed recursively, a glob is expanded by the filesystem, a manifest is read
    through fsspec; uris are then full URLs.

    A directory walk or glob does not follow folder symlinks that lead out of the input
    folder unless ``follow_links`` is true. A file name that is not valid UTF-8 is listed
    with ``\\xHH`` escapes (see :func:`batchseg.io.formats.escape_name`): reading it fails
    alone with "file name is not valid UTF-8".

    ``skip`` leaves folders out of a directory walk (the job's own output store and other
    batchseg stores: a store inside its input folder is not an image of it; a glob lists
    only files, so never a store).

    A local CSV manifest is read in bounded batches into columns (a
    :class:`~batchseg.core.refcolumns.RefColumns`, no Python object per image).
    """
    refs: list[ImageRef] | RefColumns
    if "://" in source:
        refs = _from_url(source)
    elif is_zarr(source):
        refs = [ImageRef(Path(source.rstrip("/")).name, local_uri(source))]
    elif any(c in source for c in _GLOB_CHARS) and not os.path.exists(source):
        refs = _from_glob(source, follow_links)
    elif os.path.isdir(source):
        refs = _from_directory(Path(local_uri(source)), follow_links, skip)
    elif os.path.isfile(source) and Path(source).suffix.lower() in MANIFEST_SUFFIXES:
        refs = _from_manifest(Path(source))
    elif os.path.isfile(source) and Path(source).suffix.lower() in IMAGE_SUFFIXES:
        refs = [ImageRef(Path(source).name, local_uri(source))]
    elif not os.path.exists(source):
        raise InputError(f"input not found: {source}")
    else:
        raise InputError(
            f"input {source} is neither a directory, a glob, an image nor a .txt/.csv manifest"
        )
    if isinstance(refs, RefColumns):  # valid UTF-8 by construction: nothing to escape
        if not len(refs):
            raise InputError(f"no images found in {source}")
        return sorted_unique_columns(refs)
    with paused_gc():
        refs = _escape_names(refs)
        refs = _deduplicate(refs)
        if not refs:
            raise InputError(f"no images found in {source}")
        return sorted(refs, key=lambda r: r.image_id)


def _from_url(url: str) -> list[ImageRef]:
    """A URL: a prefix ("directory"), a glob, a manifest or one image, read with fsspec."""
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # unknown protocol, backend not installed
        raise InputError(f"cannot open {url}: {exc}") from None
    path = str(path)
    suffix = _suffix(path)
    try:
        if any(c in path for c in _GLOB_CHARS) and not fs.exists(path):
            return _from_url_glob(fs, path)
        if fs.isdir(path):
            return _from_url_directory(fs, path.rstrip("/"))
        if suffix in MANIFEST_SUFFIXES and fs.isfile(path):
            return _from_url_manifest(fs, url, path)
        if suffix in IMAGE_SUFFIXES and fs.isfile(path):
            return [ImageRef(path.rsplit("/", 1)[-1], fs.unstrip_protocol(path))]
        exists = fs.exists(path)
    except InputError:
        raise
    except OSError as exc:  # permission denied, no such bucket, unreachable endpoint
        raise InputError(f"cannot read {url}: {exc.strerror or exc}") from None
    if not exists:
        raise InputError(f"input not found: {url}")
    raise InputError(
        f"input {url} is neither a directory, a glob, an image nor a .txt/.csv manifest"
    )


def _suffix(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def _from_url_directory(fs: Any, root: str) -> list[ImageRef]:
    refs: list[ImageRef] = []
    skipped = 0
    for key in fs.find(root):
        if not key.startswith(root + "/"):
            continue
        relative = key[len(root) + 1 :]
        if not relative or _hidden(relative) or relative.endswith("/"):
            continue
        if _suffix(relative) not in IMAGE_SUFFIXES:
            skipped += 1
            continue
        refs.append(ImageRef(relative, fs.unstrip_protocol(key)))
    if skipped:
        log.info(
            "skipped %d file(s) without an image suffix under %s",
            skipped,
            fs.unstrip_protocol(root),
        )
    return refs


def _from_url_glob(fs: Any, pattern: str) -> list[ImageRef]:
    prefix = []
    for part in pattern.split("/"):
        if any(c in part for c in _GLOB_CHARS):
            break
        prefix.append(part)
    base = "/".join(prefix)
    refs = []
    for key in fs.glob(pattern):
        key = str(key)
        if _suffix(key) not in IMAGE_SUFFIXES or not key.startswith(base + "/"):
            continue
        if not fs.isfile(key):
            continue
        refs.append(ImageRef(key[len(base) + 1 :], fs.unstrip_protocol(key)))
    return refs


def _from_url_manifest(fs: Any, url: str, path: str) -> list[ImageRef]:
    """A manifest at a URL; relative entries are resolved against the manifest's URL folder."""
    folder = fs.unstrip_protocol(path).rsplit("/", 1)[0]
    try:
        raw = fs.cat_file(path)
        text = bytes(raw).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {url}: {exc}") from None
    if _suffix(path) == ".csv":
        return _parse_csv(io.StringIO(text, newline=""), url, folder)
    return [
        ImageRef(line, _resolve(line, folder))
        for line in (raw_line.strip() for raw_line in text.splitlines())
        if line and not line.startswith("#")
    ]


def _from_directory(
    root: Path, follow_links: bool = False, skip: FolderFilter | None = None
) -> list[ImageRef]:
    refs: list[ImageRef] = []
    skipped = 0
    left_out: list[str] = []
    outside = 0
    top = os.path.realpath(root)
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a symlink loop or a second link to a visited folder
            log.warning("skipping %s: folder already visited (symlink loop?)", dirpath)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if not follow_links:
            leaving = [d for d in dirnames if _leaves(os.path.join(dirpath, d), top)]
            outside += len(leaving)
            dirnames[:] = [d for d in dirnames if d not in leaving]
        if skip is not None:
            left = [d for d in dirnames if skip(os.path.join(dirpath, d))]
            left_out += [os.path.join(dirpath, d) for d in left]
            dirnames[:] = [d for d in dirnames if d not in left]
        # a Zarr image is a folder: listed as one image, never walked into
        for name in [d for d in dirnames if is_zarr(os.path.join(dirpath, d))]:
            dirnames.remove(name)
            path = Path(dirpath) / name
            refs.append(ImageRef(path.relative_to(root).as_posix(), str(path.absolute())))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
                continue
            refs.append(ImageRef(path.relative_to(root).as_posix(), str(path.absolute())))
    if skipped:
        log.info("skipped %d file(s) without an image suffix under %s", skipped, root)
    _log_links(outside, str(root))
    _log_skipped(left_out)
    return refs


def _log_skipped(folders: list[str]) -> None:
    if folders:
        log.info(
            "left out %d batchseg store(s) inside the input: %s",
            len(folders),
            ", ".join(escape_name(f) for f in folders[:3]) + (", ..." if len(folders) > 3 else ""),
        )


def _leaves(path: str, top: str) -> bool:
    """Whether ``path`` is a folder symlink whose target lies outside ``top`` (resolved)."""
    if not os.path.islink(path):
        return False
    real = os.path.realpath(path)
    return real != top and not real.startswith(top.rstrip(os.sep) + os.sep)


def _log_links(outside: int, root: str) -> None:
    if outside:
        log.warning(
            "skipped %d folder link(s) leading out of %s (--follow-links follows them)",
            outside,
            root,
        )


def _from_glob(pattern: str, follow_links: bool = False) -> list[ImageRef]:
    prefix = []
    for part in Path(pattern).parts:
        if any(c in part for c in _GLOB_CHARS):
            break
        prefix.append(part)
    base = Path(*prefix) if prefix else Path(".")
    base_uri = local_uri(str(base))
    top = os.path.realpath(base)
    refs = []
    outside: set[str] = set()
    for match in glob.iglob(pattern, recursive=True):
        path = Path(match)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if not follow_links:
                link = _link_out(path.parent, base, top)
                if link is not None:
                    outside.add(link)
                    continue
            relative = path.relative_to(base).as_posix()
            refs.append(ImageRef(relative, _join(base_uri, relative)))
    _log_links(len(outside), str(base))
    return refs


def _link_out(folder: Path, base: Path, top: str) -> str | None:
    """The first folder link between ``base`` and ``folder`` that leads out of ``top``."""
    current = base
    for part in folder.relative_to(base).parts:
        current = current / part
        if _leaves(str(current), top):
            return str(current)
    return None


def _from_manifest(manifest: Path) -> list[ImageRef] | RefColumns:
    folder = Path(local_uri(str(manifest))).parent
    try:
        if manifest.suffix.lower() == ".csv":
            columns = read_csv_columns(manifest, str(folder))
            return columns if columns is not None else list(_read_csv(manifest, folder))
        with open(manifest, encoding="utf-8-sig") as fh:
            lines = [line.strip() for line in fh]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {manifest}: {exc}") from None
    return relative_manifest_ids(
        [
            ImageRef(line, _resolve(line, str(folder)))
            for line in lines
            if line and not line.startswith("#")
        ]
    )


def relative_manifest_ids(refs: list[ImageRef]) -> list[ImageRef]:
    """Ids a person can type: when every entry of a local manifest is an absolute path, the id is
    the path relative to the entries' common folder (``/data/cam1/a.png`` and
    ``/data/cam2/b.png`` give ``cam1/a.png`` and ``cam2/b.png``). Manifests with any relative
    entry keep their entries as written (relative to the manifest's folder)."""
    if not refs or not all(r.image_id.startswith("/") for r in refs):
        return refs
    common = os.path.commonpath([os.path.dirname(r.image_id) for r in refs])
    cut = len(common.rstrip("/")) + 1
    return [r._replace(image_id=r.image_id[cut:]) for r in refs]


def _read_csv(manifest: Path, folder: Path) -> list[ImageRef]:
    """Stream a CSV manifest (constant extra memory; about 2 s per 10^6 rows)."""
    base = str(folder)
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
        return relative_manifest_ids(_parse_csv(fh, str(manifest), base))


def _parse_csv(fh: Iterable[str], manifest: str, base: str) -> list[ImageRef]:
    """Rows of a CSV manifest; relative paths are resolved against ``base``."""
    refs: list[ImageRef] = []
    sizes: dict[str, int] = {}  # one int object per distinct size (shapes repeat)

    def size(text: str, lineno: int) -> int:
        value = sizes.get(text)
        if value is None:
            try:
                value = sizes[text] = int(text)
            except ValueError:
                raise InputError(
                    f"manifest {manifest} line {lineno}: width/height must be integers"
                ) from None
        return value

    with paused_gc():
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "path" not in header:
            raise InputError(f"manifest {manifest} has no 'path' column (columns: {header})")
        ip = header.index("path")
        ih = header.index("height") if "height" in header else -1
        iw = header.index("width") if "width" in header else -1
        sized = ih >= 0 and iw >= 0
        for lineno, row in enumerate(reader, start=2):
            if len(row) <= ip:
                continue
            path = row[ip].strip()
            if not path:
                continue
            if "://" in path or path.startswith("/"):
                uri = path
            else:
                uri = f"{base}/{path[2:] if path.startswith('./') else path}"
            height = width = None
            if sized and len(row) > max(ih, iw):
                h, w = row[ih].strip(), row[iw].strip()
                if h and w:
                    height, width = size(h, lineno), size(w, lineno)
            refs.append(ImageRef(path, uri, height, width))
    return refs


def _resolve(path: str, folder: str) -> str:
    if "://" in path:
        return path
    if not path.startswith("/"):
        path = f"{folder}/{path[2:] if path.startswith('./') else path}"
    if "://" in folder or not _UNTIDY.search(path):
        return path
    return local_uri(path)


#: What :func:`os.path.normpath` would change in an absolute path: ``.``/``..`` segments, ``//``.
_UNTIDY = re.compile(r"/\.{1,2}(/|$)|//")


def local_uri(path: str) -> str:
    """The uri stored for a local path: absolute and normalised (``data/../data/a.png`` is
    ``/cwd/data/a.png``), so one file is one uri however the input was spelled. Where a
    ``..`` follows a folder link (the OS then resolves it in the link's target) the path is
    only made absolute: tidying it by its letters would name another file."""
    absolute = str(Path(path).absolute())
    tidy = os.path.normpath(absolute)
    if tidy == absolute or os.path.realpath(tidy) == os.path.realpath(absolute):
        return tidy
    return absolute


def _join(folder_uri: str, relative: str) -> str:
    """``folder_uri`` (from :func:`local_uri`) and a relative path below it, as one uri."""
    uri = f"{folder_uri.rstrip('/')}/{relative}"
    return local_uri(uri) if _UNTIDY.search(uri) else uri


def _deduplicate(refs: list[ImageRef]) -> list[ImageRef]:
    if len({r.image_id for r in refs}) == len(refs):
        return refs
    seen: dict[str, ImageRef] = {}
    duplicates = 0
    for ref in refs:
        if ref.image_id in seen:
            duplicates += 1
            continue
        seen[ref.image_id] = ref
    if duplicates:
        log.warning("ignored %d duplicate entr%s", duplicates, "y" if duplicates == 1 else "ies")
    return list(seen.values())


def _escape_names(refs: list[ImageRef]) -> list[ImageRef]:
    """Refs whose id or uri is not valid UTF-8 get ``\\xHH`` escapes (logged once)."""
    escaped = 0
    out = refs
    for i, ref in enumerate(refs):
        if ref.image_id.isascii() and ref.uri.isascii():
            continue
        image_id, uri = escape_name(ref.image_id), escape_name(ref.uri)
        if image_id == ref.image_id and uri == ref.uri:
            continue
        if out is refs:
            out = list(refs)
        out[i] = ref._replace(image_id=image_id, uri=uri)
        escaped += 1
    if escaped:
        log.warning(
            "%d file name(s) are not valid UTF-8: listed with \\x escapes, they fail alone",
            escaped,
        )
    return out
