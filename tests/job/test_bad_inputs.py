"""Bad inputs are isolated: each fails alone with a one-line error and the job goes on.

Every job here runs through a real multi-process cluster (``cluster_address``, attached with
``--scheduler``) except where a separate launcher process is needed.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps
from typer.testing import CliRunner

import batchseg
from batchseg.cli import app
from batchseg.cluster.profiles import AddressProfile
from batchseg.io import read as readers
from batchseg.io.sources import discover
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from tests.helpers.images import make_image

pytestmark = pytest.mark.integration

BATCHSEG = str(Path(sys.executable).with_name("batchseg"))
OTSU = get_method("skimage.otsu")


def _good(folder: Path, n: int = 3, seed: int = 1) -> list[str]:
    """``n`` valid PNGs in ``folder``; returns their ids."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        name = f"good_{i}.png"
        Image.fromarray(make_image(rng, 32 + 8 * i, 40, colour=bool(i % 2))).save(folder / name)
        ids.append(name)
    return ids


def _run(source: Path | str, out: Path, address: str, **kw) -> tuple[object, dict[str, dict]]:
    spec = JobSpec(
        input=str(source),
        method="skimage.otsu",
        output=str(out),
        profile=AddressProfile(address),
        **kw,
    )
    result = run_job(spec)
    table = batchseg.open(str(out)).table()
    return result, {row["image_id"]: row for row in table.to_dict("records")}


def _assert_ok(out: Path, rows: dict[str, dict], image_id: str, path: Path) -> None:
    assert rows[image_id]["status"] == "done", rows[image_id]["error"]
    expected = OTSU.segment(readers.read_image(str(path)), {})
    np.testing.assert_array_equal(batchseg.open(str(out)).mask(image_id), expected)


def _assert_fails_alone(result, rows, bad_id: str, *needles: str) -> str:
    assert result.exit_code == 3
    assert rows[bad_id]["status"] == "failed"
    error = rows[bad_id]["error"]
    assert error and "\n" not in error and len(error) <= 500
    for needle in needles:
        assert needle in error, error
    others = {k: r["status"] for k, r in rows.items() if k != bad_id}
    assert others and set(others.values()) == {"done"}, others
    assert result.failed == 1 and result.done == len(others) and result.pending == 0
    return error


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def _scan_cut(data: bytes) -> bytes:
    """A JPEG cut half way through its scan, then given an end-of-image marker."""
    start = data.rfind(b"\xff\xda")
    return data[: start + (len(data) - start) // 2] + b"\xff\xd9"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --------------------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("zero.png", lambda rng: b"", ("empty file (0 bytes)",)),
        (
            "truncated.png",
            lambda rng: _png_bytes(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))[:3000],
            ("truncated",),
        ),
        (
            "truncated.jpg",
            lambda rng: _jpeg_bytes(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))[:2000],
            ("truncated",),
        ),
        (
            "cut-scan.jpg",  # cut in its scan, then an end-of-image marker: Pillow decodes it
            lambda rng: _scan_cut(_jpeg_bytes(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))),
            ("truncated JPEG file",),
        ),
        ("random.jpg", lambda rng: rng.bytes(4096), ("not an image",)),
        ("notes.png", lambda rng: b"meeting notes\nnothing to see here\n", ("not an image",)),
    ],
    ids=[
        "zero-byte",
        "truncated-png",
        "truncated-jpeg",
        "jpeg-scan-cut-with-end-marker",
        "random-bytes",
        "text-as-png",
    ],
)
def test_broken_file_fails_alone(tmp_path, cluster_address, name, content, needles):
    folder = tmp_path / "in"
    _good(folder)
    (folder / name).write_bytes(content(np.random.default_rng(7)))
    result, rows = _run(folder, tmp_path / "out.zarr", cluster_address)
    _assert_fails_alone(result, rows, name, *needles)


def test_text_file_without_image_suffix_is_skipped(tmp_path, cluster_address):
    folder = tmp_path / "in"
    ids = _good(folder)
    (folder / "notes.txt").write_text("not an image")
    (folder / "README").write_text("no suffix at all")
    result, rows = _run(folder, tmp_path / "out.zarr", cluster_address)
    assert result.exit_code == 0 and sorted(rows) == sorted(ids)


def test_decompression_bomb_refused_by_max_pixels(tmp_path, cluster_address):
    folder = tmp_path / "in"
    _good(folder)
    # 67 bytes of PNG declaring 100000 x 100000 pixels (no real pixel data)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")
    (folder / "bomb.png").write_bytes(bomb)
    result, rows = _run(folder, tmp_path / "out.zarr", cluster_address, max_pixels=1_000_000)
    _assert_fails_alone(result, rows, "bomb.png", "exceeds the pixel limit 1000000")
    assert rows["bomb.png"]["height"] == 0  # never planned into a (huge) shape bucket


# --------------------------------------------------------------------------- odd but valid


def test_unusual_but_valid_formats_succeed(tmp_path, cluster_address):
    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    folder.mkdir()
    grey8 = make_image(rng, 40, 56, colour=False)
    rgb8 = make_image(rng, 44, 52, colour=True)
    tifffile.imwrite(folder / "grey16.tif", grey8.astype(np.uint16) * 257)
    tifffile.imwrite(folder / "rgb8.tiff", rgb8, photometric="rgb")
    tifffile.imwrite(folder / "rgb16.tif", rgb8.astype(np.uint16) * 257, photometric="rgb")
    Image.fromarray(rgb8).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    pal = Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette.png", transparency=0)
    out = tmp_path / "out.zarr"
    result, rows = _run(folder, out, cluster_address)
    assert result.exit_code == 0, {k: r["error"] for k, r in rows.items()}
    assert readers.read_image(str(folder / "grey16.tif")).dtype == np.uint16
    assert readers.read_image(str(folder / "rgb16.tif")).shape == (44, 52, 3)
    with Image.open(folder / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    with Image.open(folder / "palette.png") as im:
        assert im.mode == "P" and "transparency" in im.info
    for image_id in rows:
        _assert_ok(out, rows, image_id, folder / image_id)


def test_exif_rotated_jpeg_is_stored_upright(tmp_path, cluster_address):
    rng = np.random.default_rng(4)
    folder = tmp_path / "in"
    folder.mkdir()
    raw = make_image(rng, 30, 50, colour=True)  # stored 30 x 50, displayed 50 x 30
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(raw).save(folder / "rotated.jpg", quality=95, exif=exif.tobytes())
    out = tmp_path / "out.zarr"
    result, rows = _run(folder, out, cluster_address)
    assert result.exit_code == 0
    assert (rows["rotated.jpg"]["height"], rows["rotated.jpg"]["width"]) == (50, 30)
    with Image.open(folder / "rotated.jpg") as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert upright.shape == (50, 30, 3)
    stored = batchseg.open(str(out)).mask("rotated.jpg")
    assert stored.shape == (50, 30)
    np.testing.assert_array_equal(stored, OTSU.segment(upright, {}))


# --------------------------------------------------------------------------- file system oddities


def test_fifo_with_image_suffix_fails_alone_without_hanging(tmp_path, cluster_address):
    """Opening a FIFO blocks until a writer appears: the reader must refuse non-regular files."""
    folder = tmp_path / "in"
    _good(folder)
    os.mkfifo(folder / "pipe.png")
    done: list = []
    worker = threading.Thread(
        target=lambda: done.append(_run(folder, tmp_path / "out.zarr", cluster_address)),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the stuck reader so the cluster is usable again
        with open(folder / "pipe.png", "wb"):
            pass
        worker.join(timeout=30)
        pytest.fail("a FIFO named *.png hung the job")
    result, rows = done[0]
    _assert_fails_alone(result, rows, "pipe.png", "not a regular file")


def test_unreadable_file_fails_alone(tmp_path, cluster_address):
    """Permission denied on one image. Root reads anything, so as root the launcher and its
    embedded cluster run as ``nobody`` (a real kernel EACCES, not a monkeypatch)."""
    base = Path(tempfile.mkdtemp(prefix="batchseg-perm-"))
    try:
        os.chmod(base, 0o777)
        folder = base / "in"
        _good(folder)
        (folder / "secret.png").write_bytes(_png_bytes(np.zeros((32, 40), np.uint8)))
        os.chmod(folder / "secret.png", 0)
        out = base / "out.zarr"
        if os.geteuid() != 0:
            result, rows = _run(folder, out, cluster_address)
        else:
            import pwd

            nobody = pwd.getpwnam("nobody")
            try:
                usable = subprocess.run(
                    [sys.executable, "-c", "import batchseg"],
                    user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                    capture_output=True, timeout=60, cwd=base,
                ).returncode == 0  # fmt: skip
            except OSError:
                usable = False
            if not usable:
                pytest.skip(
                    "running as root and user 'nobody' cannot run this Python (e.g. it lives "
                    "under /root): root reads unreadable files, so no real EACCES is possible; "
                    "tests/io/test_read.py::test_permission_denied covers the reader"
                )
            for p in [folder, *folder.iterdir()]:
                os.chmod(p, 0o755 if p.is_dir() else (0 if p.name == "secret.png" else 0o644))
            env = {**os.environ, "HOME": str(base), "DASK_TEMPORARY_DIRECTORY": str(base)}
            proc = subprocess.run(
                [
                    BATCHSEG,
                    "run",
                    str(folder),
                    "-m",
                    "skimage.otsu",
                    "-o",
                    str(out),
                    "--workers",
                    "1",
                ],
                env=env,
                cwd=base,
                user=nobody.pw_uid,
                group=nobody.pw_gid,
                extra_groups=[],
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert proc.returncode == 3, proc.stderr
            assert "1 failed" in proc.stdout
            result = type("R", (), {"exit_code": 3, "failed": 1, "done": 3, "pending": 0})()
            rows = {r["image_id"]: r for r in batchseg.open(str(out)).table().to_dict("records")}
        _assert_fails_alone(result, rows, "secret.png", "permission denied")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_symlink_loop_in_input_folder_does_not_hang(tmp_path, cluster_address):
    folder = tmp_path / "in"
    ids = _good(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "self").symlink_to(".", target_is_directory=True)
    (folder / "dangling.png").symlink_to(folder / "missing.png")
    found: list = []
    t = threading.Thread(target=lambda: found.append(discover(str(folder))), daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "discovery did not terminate on a symlink loop"
    assert sorted(r.image_id for r in found[0]) == sorted([*ids, "dangling.png"])
    result, rows = _run(folder, tmp_path / "out.zarr", cluster_address)
    _assert_fails_alone(result, rows, "dangling.png", "file not found")


# --------------------------------------------------------------------------- manifests


def test_manifest_missing_entry_fails_alone_and_duplicates_are_ignored(
    tmp_path, cluster_address, caplog
):
    folder = tmp_path / "in"
    ids = _good(folder)
    manifest = folder / "list.txt"
    manifest.write_text(
        "# a manifest\n" + "\n".join([ids[0], ids[1], ids[0], "gone.png", ids[2], ids[1]]) + "\n"
    )
    with caplog.at_level(logging.WARNING, logger="batchseg"):
        result, rows = _run(manifest, tmp_path / "out.zarr", cluster_address)
    assert "ignored 2 duplicate entries" in caplog.text
    assert sorted(rows) == sorted([*ids, "gone.png"])  # each id once
    _assert_fails_alone(result, rows, "gone.png", "file not found")


# --------------------------------------------------------------------------- names


def test_names_with_spaces_non_ascii_and_shell_metacharacters(tmp_path, cluster_address):
    """Ids are preserved, `batchseg mask` works on them, and nothing in a name is executed."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "in"
    (folder / "sub dir ü").mkdir(parents=True)
    names = [
        "my holiday photo.png",
        "café naïve 日本語.png",
        "sub dir ü/ünïcödé ☃.png",
        "$(touch pwned).png",
        "`touch pwned2`.png",
        "a;touch pwned3;b.png",
        'quote\'s "and" | pipe & amp.png',
    ]
    for i, name in enumerate(names):
        Image.fromarray(make_image(rng, 32, 36 + i, colour=False)).save(folder / name)
    out = tmp_path / "out.zarr"
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run(
        [
            BATCHSEG,
            "run",
            str(folder),
            "-m",
            "skimage.otsu",
            "-o",
            str(out),
            "--scheduler",
            cluster_address,
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    view = batchseg.open(str(out))
    assert sorted(view.table()["image_id"]) == sorted(names)
    for i, name in enumerate(names):
        expected = OTSU.segment(readers.read_image(str(folder / name)), {})
        np.testing.assert_array_equal(view.mask(name), expected)
        png = work / f"mask_{i}.png"
        args = ["mask", str(out), name, "--output", str(png), "--overlay"]
        if name.startswith("$("):  # one through a real process, with the name as argv
            res = subprocess.run([BATCHSEG, *args], cwd=work, capture_output=True, timeout=60)
            assert res.returncode == 0, res.stderr
        else:
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, res.output
        with Image.open(png) as im:
            assert im.size == (36 + i, 32)
    created = [p.name for p in tmp_path.rglob("pwned*")] + [
        p for p in ("pwned", "pwned2", "pwned3") if os.path.exists(os.path.join("/tmp", p))
    ]
    assert created == [], "a file name was executed"


# --------------------------------------------------------------------------- changed inputs


def test_image_changed_or_removed_between_planning_and_execution(tmp_path, cluster_address):
    """A manifest names the images, so the rerun is the same job (same fingerprint); a folder
    input that lost an image is another job (refused, see the end of this test)."""
    folder = tmp_path / "in"
    ids = _good(folder, n=4)
    manifest = folder / "list.txt"
    manifest.write_text("\n".join(ids) + "\n")
    out = tmp_path / "out.zarr"
    cmd = [BATCHSEG, "run", str(manifest), "-m", "skimage.otsu", "-o", str(out),
           "--scheduler", cluster_address, "--shard-size", "1"]  # fmt: skip
    # the launcher plans the job, writes the store, then dies before executing anything
    first = subprocess.run(
        cmd,
        env={**os.environ, "BATCHSEG_FAULT": "before-execute"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert first.returncode == -9, first.stderr
    resized, removed = ids[1], ids[2]
    Image.fromarray(np.zeros((17, 23), np.uint8)).save(folder / resized)
    (folder / removed).unlink()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert second.returncode == 3, second.stderr
    rows = {r["image_id"]: r for r in batchseg.open(str(out)).table().to_dict("records")}
    assert rows[resized]["status"] == "failed"
    assert "changed since planning" in rows[resized]["error"]
    assert "17x23" in rows[resized]["error"]
    assert rows[removed]["status"] == "failed" and rows[removed]["error"] == "file not found"
    assert {rows[i]["status"] for i in ids if i not in (resized, removed)} == {"done"}
    status = subprocess.run(
        [BATCHSEG, "status", str(out)], capture_output=True, text=True, timeout=60
    )
    failed_lines = [line for line in status.stdout.splitlines() if "failed  " in line]
    assert len(failed_lines) == 2 and all("changed" in s or "not found" in s for s in failed_lines)
    # the folder itself now holds 3 images: as an input it is a different job, refused
    refused = CliRunner().invoke(
        app, ["run", str(folder), "-m", "skimage.otsu", "-o", str(out),
              "--scheduler", cluster_address],
    )  # fmt: skip
    assert refused.exit_code == 1 and "another job" in refused.output


# --------------------------------------------------------------------------- security


def test_checkpoint_pickle_is_never_executed(tmp_path, cluster_address):
    """State_dict files are loaded with weights_only=True: a pickle whose __reduce__ would
    run code is refused, through the method (client) path and the job path."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from batchseg.errors import UsageError
    from batchseg.methods import models

    marker = tmp_path / "pwned-by-pickle"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"classifier.4.weight": Evil()}, evil)  # default pickle protocol
    method = get_method("torchvision.lraspp_mobilenet_v3_large")
    params = method.resolve_params({"weights": str(evil)})
    with pytest.raises(UsageError, match="cannot read state_dict"):
        method.classes(params)
    with pytest.raises(UsageError, match="cannot read state_dict"):
        models.load_torchvision("lraspp_mobilenet_v3_large", str(evil))
    folder = tmp_path / "in"
    _good(folder, n=1)
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(folder),
            "-m",
            "torchvision.lraspp_mobilenet_v3_large",
            "-p",
            f"weights={evil}",
            "-o",
            str(tmp_path / "o.zarr"),
            "--scheduler",
            cluster_address,
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot read state_dict" in result.output
    assert not marker.exists()
    # sanity: the same object really does run code with a plain (unsafe) pickle load
    assert not marker.exists()
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_directory_named_like_an_image_is_a_folder_not_an_image(tmp_path, cluster_address):
    folder = tmp_path / "in"
    ids = _good(folder)
    (folder / "x.png").mkdir()
    Image.fromarray(np.full((20, 20), 200, np.uint8)).save(folder / "x.png" / "inner.png")
    result, rows = _run(folder, tmp_path / "out.zarr", cluster_address)
    assert result.exit_code == 0 and sorted(rows) == sorted([*ids, "x.png/inner.png"])
    assert stat.S_ISDIR(os.stat(folder / "x.png").st_mode)
