"""How ``batchseg mask`` draws: its options, checked together, and what they resolve to in a
store (hidden class ids, the truth source)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError


@dataclass(frozen=True)
class MaskOptions:
    """How ``batchseg mask`` draws each picture."""

    overlay: bool = False
    alpha: float = 0.5
    confidence: bool = False
    legend: bool = False
    level: int = 0
    max_pixels: int | None = None
    object_label: int | None = None
    hidden: tuple[str, ...] = ()
    outlines: bool = True
    truth: str | None = None
    #: a stack's plane: the channels drawn under an overlay (None: what the method saw)
    channels: str | None = None

    def check(self) -> MaskOptions:
        """The options with the default pixel limit; UsageError for bad combinations."""
        from batchseg.io.read import DEFAULT_MAX_PIXELS

        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError("--alpha must be between 0 and 1")
        if self.level < 0:
            raise UsageError("--level must be >= 0")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UsageError("--max-pixels must be >= 1")
        if self.level and self.confidence:
            raise UsageError(
                "--level is for label maps only: confidence maps have no stored levels"
            )
        if self.object_label is not None and (not self.overlay or self.confidence):
            raise UsageError(
                "--object highlights an object on an --overlay (not with --confidence)"
            )
        if self.confidence:
            self._check_confidence()
        if not self.outlines and not self.overlay:
            raise UsageError("--no-outlines is for --overlay (a colour mask has no outlines)")
        return replace(self, max_pixels=self.max_pixels or DEFAULT_MAX_PIXELS)

    def _check_confidence(self) -> None:
        """UsageError for options a confidence map would silently ignore."""
        given = [
            name
            for name, on in (
                ("--overlay", self.overlay),
                ("--legend", self.legend),
                ("--hide", bool(self.hidden)),
                ("--no-outlines", not self.outlines),
                ("--truth", self.truth is not None),
            )
            if on
        ]
        if given:
            raise UsageError(
                f"--confidence writes the confidence map with its scale bar; {given[0]} is for "
                "label maps (write the overlay with a second command)"
            )


@dataclass(frozen=True)
class MaskDrawing:
    """What ``mask`` resolved once per store: hidden class ids and the truth source."""

    hidden: tuple[int, ...] = ()
    truth: Any = None  # batchseg.report.truth.TruthSource

    @classmethod
    def of(cls, view: Any, options: MaskOptions) -> MaskDrawing:
        """``--hide`` names as class ids and ``--truth`` as its source; UsageError for a
        class the store does not have, or ``--hide`` on region labels."""
        from batchseg.report.truth import find_source

        truth = None if options.truth is None else find_source(view, options.truth)
        if not options.hidden:
            return cls((), truth)
        if not Kind(view.kind).class_map:
            raise UsageError(f"--hide is for class maps; the store holds {view.kind} labels")
        names = [str(n) for n in view.classes or []]
        by_name = {n.lower(): i for i, n in enumerate(names)}
        ids = []
        for given in options.hidden:
            key = given.strip().lower()
            if key in by_name:
                ids.append(by_name[key])
            elif key.isdigit() and int(key) < len(names):
                ids.append(int(key))
            else:
                raise UsageError(f"--hide {given!r}: not a class of the store ({', '.join(names)})")
        return cls(tuple(ids), truth)
