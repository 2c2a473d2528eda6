"""Output kinds: what a store's label maps mean, and everything that differs by kind.

This module owns the kind names. Elsewhere code asks a :class:`Kind` member what it needs
(``kind.class_map``, ``kind.scorer``, ...) and never compares kind strings.
"""

from __future__ import annotations

from enum import StrEnum

from batchseg.errors import UsageError


class Kind(StrEnum):
    """What the values of a store's label maps are."""

    REGIONS = "regions"  #: ids of regions (superpixels, objects); 0 may mean "no region"
    CLASSES = "classes"  #: a class index per pixel; every value is a class
    INSTANCES = "instances"  #: ids of instances, each with a class (and a score)
    PANOPTIC = "panoptic"  #: ids of segments, things and stuff (a panoptic merge)

    def __repr__(self) -> str:
        """Shown as its name (``'classes'``), as the string it equals."""
        return repr(self.value)

    @classmethod
    def parse(cls, value: object, *, what: str = "output kind") -> Kind:
        """The member named ``value``; one line naming the known kinds otherwise."""
        try:
            return cls(str(value))
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise UsageError(f"unknown {what} {value!r}; one of {known}") from None

    @property
    def class_map(self) -> bool:
        """Pixels hold class indices (colour by class, legend, per-class statistics)."""
        return self is Kind.CLASSES

    @property
    def id_map(self) -> bool:
        """Pixels hold ids whose numbers mean nothing (colours arbitrary, 0 = nothing)."""
        return self is not Kind.CLASSES

    @property
    def has_classes(self) -> bool:
        """The store names classes (of pixels, instances or segments)."""
        return self is not Kind.REGIONS

    @property
    def object_classes(self) -> bool:
        """Each id carries a class of its own (instances, panoptic segments)."""
        return self in (Kind.INSTANCES, Kind.PANOPTIC)

    @property
    def method_output(self) -> bool:
        """A segmentation method can produce it (panoptic stores come from a merge)."""
        return self is not Kind.PANOPTIC

    @property
    def scorer(self) -> str:
        """How ``evaluate`` scores it: ``pixels`` (confusion matrix), ``regions`` (region
        agreement), ``coco`` (COCO AP) or ``panoptic`` (PQ/SQ/RQ)."""
        return _SCORERS[self]

    @property
    def object_scored(self) -> bool:
        """Scored object by object (COCO AP or panoptic quality), not pixel by pixel."""
        return self.scorer in ("coco", "panoptic")

    @property
    def exports(self) -> tuple[str, ...]:
        """Export formats of ``batchseg export`` for this kind."""
        return _EXPORTS[self]


_SCORERS = {
    Kind.REGIONS: "regions",
    Kind.CLASSES: "pixels",
    Kind.INSTANCES: "coco",
    Kind.PANOPTIC: "panoptic",
}
_EXPORTS = {
    Kind.REGIONS: ("ome-zarr",),
    Kind.CLASSES: ("ome-zarr",),
    Kind.INSTANCES: ("ome-zarr", "coco"),
    Kind.PANOPTIC: ("ome-zarr", "coco-panoptic"),
}
