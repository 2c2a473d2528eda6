"""Issue 17 item 12 (methods): bad parameters and checkpoints are exit 2 before anything exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import UsageError
from batchseg.methods import all_methods, get_method
from batchseg.methods.base import Method, Param
from tests.helpers.cli import run_cli

FLOAT_PARAMS = [(m.id, p.name) for m in all_methods() for p in m.params if p.type is float]


@pytest.mark.parametrize(("method_id", "name"), FLOAT_PARAMS)
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", float("nan"), float("inf")])
def test_non_finite_float_parameters_are_refused(method_id: str, name: str, value: object) -> None:
    with pytest.raises(UsageError, match=f"parameter '{name}' must be a finite number"):
        get_method(method_id).resolve_params({name: value})


def test_every_method_has_float_parameters_checked() -> None:
    assert ("skimage.slic", "compactness") in FLOAT_PARAMS
    assert len(FLOAT_PARAMS) >= 8


@pytest.mark.parametrize(
    ("method_id", "params", "message"),
    [
        ("skimage.slic", {"compactness": "-1"}, "'compactness' must be >= 0"),
        ("skimage.slic", {"n_segments": "0"}, "'n_segments' must be >= 1"),
        ("skimage.felzenszwalb", {"sigma": "-0.5"}, "'sigma' must be >= 0"),
        ("skimage.local", {"block_size": "4"}, "must be odd"),
        ("kmeans", {"k": "1e400"}, "expects int"),
        ("skimage.sobel_watershed", {"markers": "inf"}, "expects int"),
    ],
)
def test_out_of_range_parameters_are_refused(
    method_id: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        get_method(method_id).resolve_params(params)


def test_param_maximum() -> None:
    param = Param("alpha", float, 0.5, maximum=1.0)
    assert param.parse("1") == 1.0
    with pytest.raises(UsageError, match="must be <= 1.0"):
        param.parse("1.5")


def test_family_is_a_closed_set() -> None:
    with pytest.raises(ValueError, match="family 'magic' is not one of"):
        Method(id="x", kind="regions", kernel=lambda image: image, description="x", family="magic")  # type: ignore[arg-type]
    assert {m.family for m in all_methods()} <= {
        "threshold",
        "edge",
        "region",
        "clustering",
        "semantic",
        "instance",
        "import",
    }


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _one_line_exit_2(result: object, out: Path, *needles: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], output
    assert not out.exists()  # no store was created (and no cluster started: see the time)


def test_cli_refuses_nan_compactness_before_any_store(tmp_path: Path) -> None:
    out = tmp_path / "out.zarr"
    result = run_cli("run", _images(tmp_path), "-m", "skimage.slic", "-p", "compactness=nan",
                     "-o", out)  # fmt: skip
    _one_line_exit_2(result, out, "compactness", "finite")


# ------------------------------------------------------------------ checkpoints


def _bad_checkpoint(tmp_path: Path) -> Path:
    """An LR-ASPP state_dict whose classifier fits (3 classes) but one backbone tensor does not."""
    torch = pytest.importorskip("torch")
    from torchvision.models import get_model

    model = get_model(
        "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=3
    )
    state = model.state_dict()
    key = next(k for k, v in state.items() if k.startswith("backbone") and v.ndim == 4)
    state[key] = torch.zeros(tuple(state[key].shape[:-1]) + (state[key].shape[-1] + 2,))
    path = tmp_path / "wrong_shapes.pth"
    torch.save(state, path)
    return path


def test_wrong_shapes_are_found_by_the_launcher_hook(tmp_path: Path) -> None:
    path = _bad_checkpoint(tmp_path)
    method = get_method("torchvision.lraspp_mobilenet_v3_large")
    params = method.resolve_params({"weights": str(path)})
    with pytest.raises(UsageError) as info:
        method.validate(params)
    text = str(info.value)
    assert "\n" not in text
    assert str(path) in text and "size mismatch" in text


def test_cli_refuses_a_checkpoint_with_wrong_shapes_before_any_store(tmp_path: Path) -> None:
    path = _bad_checkpoint(tmp_path)
    out = tmp_path / "out.zarr"
    images = _images(tmp_path)
    result = run_cli("run", images, "-m", "torchvision.lraspp_mobilenet_v3_large",
                     "-p", f"weights={path}", "-o", out, "--workers", "1")  # fmt: skip
    _one_line_exit_2(result, out, str(path), "size mismatch")
    dry = run_cli("run", images, "-m",
                  "torchvision.lraspp_mobilenet_v3_large", "-p", f"weights={path}", "-o", out,
                  "--dry-run")  # fmt: skip
    _one_line_exit_2(dry, out, "size mismatch")
