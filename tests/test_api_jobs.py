"""The Python API that runs jobs (``batchseg.run``, ``evaluate``, ``panoptic``): its docstring
examples, a notebook-style script without the CLI, typed results and errors (never SystemExit)."""

from __future__ import annotations

import dataclasses
import doctest
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg import api_jobs
from batchseg.errors import InputError, StoreError, UsageError
from batchseg.results import EvaluationResult, ImageFailure, RunResult
from tests.helpers.images import make_image
from tests.helpers.panoptic import write_instances, write_semantic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _photos(folder: Path, n: int = 4, seed: int = 3) -> dict[str, np.ndarray]:
    """``n`` grey PNGs ``a.png``, ``b.png``, ... in ``folder`` (returned by name)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for k in range(n):
        name = f"{chr(ord('a') + k)}.png"
        images[name] = make_image(rng, 32, 40, colour=False)
        Image.fromarray(images[name]).save(folder / name)
    return images


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Examples of the public job functions, executed in a folder holding what they name:
    ``photos/`` (four images), ``truth/`` (their 0/1 labels), ``sem.zarr`` and ``inst.zarr``."""
    images = _photos(tmp_path / "photos")
    (tmp_path / "truth").mkdir()
    for name, image in images.items():
        Image.fromarray((image > 120).astype(np.uint8)).save(tmp_path / "truth" / name)
    write_semantic(tmp_path / "sem.zarr")
    write_instances(tmp_path / "inst.zarr")
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    functions = (batchseg.run, batchseg.evaluate, batchseg.panoptic, batchseg.import_labels)
    for function in functions:  # run's store first
        (test,) = finder.find(function, function.__name__, globs={})
        examples += len(test.examples)
        runner.run(test)
    assert examples >= 15
    assert runner.failures == 0 and runner.tries == examples


def test_a_script_runs_a_job_without_the_cli(tmp_path: Path) -> None:
    """Notebook style: a plain script generates images, runs a job on the embedded cluster and
    reads the store; Typer (the CLI) is never imported. Like any script that starts worker
    processes (multiprocessing, Dask's LocalCluster), it keeps its work under a ``__main__``
    guard: the workers import the script's file."""
    script = tmp_path / "notebook.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            import numpy as np
            from PIL import Image

            import batchseg

            def main() -> None:
                rng = np.random.default_rng(0)
                Path("pics").mkdir()
                for k in range(3):
                    image = (rng.random((24, 30)) * 255).astype(np.uint8)
                    image[4:12, 5:15] = 250
                    Image.fromarray(image).save(f"pics/p{k}.png")
                Path("pics/broken.png").write_bytes(b"not a png")
                seen = []
                result = batchseg.run(
                    "pics", method="skimage.otsu", output="pics.zarr", workers=1,
                    on_progress=lambda done, failed, total: seen.append((done, failed, total)),
                )
                assert (result.done, result.failed, result.pending) == (3, 1, 0), result
                assert result.exit_code == 3 and result.processed == 4
                assert [f.image_id for f in result.failures] == ["broken.png"], result.failures
                assert seen and seen[-1] == (3, 1, 4), seen
                table = batchseg.open("pics.zarr").table()
                assert sorted(table.loc[table["status"] == "done", "image_id"]) == [
                    "p0.png", "p1.png", "p2.png"
                ]
                assert "typer" not in sys.modules
                print("ok", result.store)


            if __name__ == "__main__":  # worker processes import this file: no job there
                main()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok pics.zarr"


def test_run_and_evaluation_results(tmp_path: Path, cluster_address: str) -> None:
    """Typed results on the session cluster: counts, failures, a resume with nothing to do, and
    an evaluation with an image lacking truth (exit 3)."""
    images = tmp_path / "images"
    pictures = _photos(images, n=3)
    (images / "zero.png").write_bytes(b"")
    result = batchseg.run(
        images, method="skimage.otsu", output=tmp_path / "out.zarr", scheduler=cluster_address
    )
    assert isinstance(result, RunResult)
    assert (result.images, result.done, result.failed, result.pending) == (4, 3, 1, 0)
    assert result.store == str(tmp_path / "out.zarr") and result.exit_code == 3
    (failure,) = result.failures
    assert failure.image_id == "zero.png" and failure.error
    stored = batchseg.open(result.store).status()["failures"]
    assert [ImageFailure(f["image_id"], f["error"]) for f in stored] == [failure]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.done = 4  # type: ignore[misc]
    again = batchseg.run(
        images, method="skimage.otsu", output=tmp_path / "out.zarr", retry_failed=False
    )  # nothing to do: no cluster (the session's scheduler is not even named)
    assert again.nothing_to_do and again.processed == 0 and again.failures == result.failures
    (tmp_path / "truth").mkdir()
    for name in ("a.png", "b.png"):  # c.png has no truth
        truth = (pictures[name] > 120).astype(np.uint8)
        Image.fromarray(truth).save(tmp_path / "truth" / name)
    scored = batchseg.evaluate(
        result.store, truth=tmp_path / "truth", name="gt", scheduler=cluster_address
    )
    assert isinstance(scored, EvaluationResult) and scored.name == "gt"
    assert scored.missing == ("c.png",) and scored.exit_code == 3 and scored.images_scored == 2
    stored = batchseg.open(result.store).evaluations()["gt"]
    assert scored.metrics["miou"] == stored["miou"] and scored.failures == ()


def test_a_job_spec_is_an_input_and_keywords_override_it(tmp_path: Path) -> None:
    _photos(tmp_path / "photos", n=1)
    spec = tmp_path / "job.toml"
    spec.write_text('input = "photos"\nmethod = "skimage.otsu"\noutput = "out.zarr"\n')
    with pytest.raises(UsageError, match="'shard_size' must be an integer in"):
        batchseg.run(spec, shard_size=0)
    with pytest.raises(UsageError, match="unknown parameter|not a parameter|n_segments"):
        batchseg.run(spec, params={"n_segments": 3})
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: batchseg.run(p / "nowhere", method="skimage.otsu", output=p / "o.zarr"),
         InputError, "nowhere"),
        (lambda p: batchseg.run(p, method="skimage.nope", output=p / "o.zarr"),
         UsageError, "skimage.nope"),
        (lambda p: batchseg.run(p, method="skimage.otsu"), UsageError, "missing 'output'"),
        (lambda p: batchseg.run(p, method="skimage.otsu", output=p / "o.zarr", workers=2,
                                scheduler="tcp://127.0.0.1:1"), UsageError, "local cluster only"),
        (lambda p: batchseg.evaluate(p / "o.zarr", truth=p, boundary_tolerance=-1.0),
         UsageError, "--boundary-tolerance"),
        (lambda p: batchseg.evaluate(p / "o.zarr", truth=p, ignore=["x"]),  # type: ignore[list-item]
         UsageError, "--ignore"),
        (lambda p: batchseg.evaluate(p / "o.zarr", truth=p, workers=0), UsageError, "'workers'"),
        (lambda p: batchseg.evaluate(p / "o.zarr", truth=p), StoreError, "o.zarr"),
        (lambda p: batchseg.panoptic(semantic=p, instances=p, output=p / "o.zarr", things=" , "),
         UsageError, "--things needs at least one class name"),
        (lambda p: batchseg.panoptic(semantic=p, instances=p, output=p / "o.zarr",
                                     cluster="cloud"), UsageError, "--cluster must be one of"),
    ],
)  # fmt: skip
def test_bad_calls_raise_batchseg_errors(tmp_path: Path, call, error, message) -> None:
    """Errors are the exceptions of batchseg.errors (never SystemExit), before any cluster."""
    _photos(tmp_path, n=1)
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert not (tmp_path / "o.zarr").exists()


def test_evaluate_is_the_function_after_the_subpackage_is_imported() -> None:
    """``batchseg/evaluate/`` is also a subpackage: importing it must not hide the function."""
    from batchseg.evaluate import job  # sets the attribute on the package, as any import does

    assert job.evaluate_store is not None
    assert batchseg.evaluate is api_jobs.evaluate
    assert sorted(batchseg.__all__) == sorted(
        ["EvaluationResult", "ImageFailure", "ImageRecord", "RunResult", "StoreView",
         "__version__", "delete_evaluation", "evaluate", "import_labels", "method", "open",
         "panoptic", "run"]
    )  # fmt: skip
    assert all(getattr(batchseg, name) is not None for name in batchseg.__all__)


def test_importing_batchseg_stays_light() -> None:
    code = (
        "import sys, batchseg\n"
        "batchseg.RunResult, batchseg.EvaluationResult, batchseg.ImageFailure\n"
        "heavy = {'zarr', 'pandas', 'dask', 'distributed', 'typer'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)
