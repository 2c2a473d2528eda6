"""Another store as ground truth (``batchseg evaluate STORE --truth-store OTHER``).

The truth of an image is the label map of the image with the same id in the truth store (its
done images; the others are images without truth). It is scored exactly as a truth file of the
same values would be: class maps through their class names (a truth class is the store's
class of the same name, case-insensitively; identical class lists are read as class indices,
as a truth folder without ``--truth-classes``), region stores against the truth store's label
ids (regions, instance ids or class indices). So a store imported from truth PNGs
(``batchseg import``) gives the scores of ``--truth`` on those PNGs, value for value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.evaluate.truth import ValueMap


@dataclass(frozen=True)
class StoreTruth:
    """The truth store's done image of each image id, and the ids it lacks."""

    files: dict[str, list[store.ImageInfo]]
    missing: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    #: class maps: truth store class index -> this store's (None: the same classes)
    value_map: ValueMap | None = None


def check_options(
    kind: Kind, truth: str | None, pattern: str | None, truth_classes: str | None
) -> None:
    """UsageError for options that do not go with ``--truth-store`` or this store's kind."""
    given = [f for f, v in (("--truth", truth), ("--truth-pattern", pattern),
                            ("--truth-classes", truth_classes)) if v]  # fmt: skip
    if given:
        raise UsageError(
            f"{', '.join(given)}: not used with --truth-store (its images are matched by id, "
            "its classes by name)"
        )
    if kind.object_scored:
        raise UsageError(
            f"--truth-store scores class maps and region stores; {kind} stores are scored "
            "against COCO JSON truth (--truth FILE.json)"
        )


def match_truth_store(
    path: str, image_ids: Sequence[str], kind: Kind, classes: Sequence[str]
) -> StoreTruth:
    """The truth of each of ``image_ids`` in the store at ``path`` (module docstring)."""
    root = store.open_group(path, mode="r")
    meta = store.read_meta(root, path)
    if kind.class_map and not meta.kind.class_map:
        raise UsageError(
            f"--truth-store {path} holds {meta.kind} labels; a class map store is scored "
            "against class maps (batchseg import --kind classes)"
        )
    done = {i.image_id: i for i in store.image_infos(root) if i.status == store.DONE}
    files = {i: [done[i]] for i in image_ids if i in done}
    missing = [i for i in image_ids if i not in done]
    if not files:
        raise UsageError(
            f"no truth found for any of the {len(image_ids)} done images in {path} "
            "(images matched by id; the truth store's done images only)"
        )
    value_map = class_value_map(path, meta.classes, classes) if kind.class_map else None
    return StoreTruth(files, missing, value_map=value_map)


def class_value_map(path: str, truth: Sequence[str], classes: Sequence[str]) -> ValueMap | None:
    """Truth class index -> this store's class index, by name; None when both are the same."""
    if list(truth) == list(classes):
        return None
    by_name = {c.lower(): k for k, c in enumerate(classes)}
    unknown = [c for c in truth if c.lower() not in by_name]
    if unknown:
        raise UsageError(
            f"--truth-store {path}: class {unknown[0]!r} is not a class of the store "
            f"({', '.join(classes)})"
        )
    return ValueMap(grey={k: by_name[c.lower()] for k, c in enumerate(truth)})
