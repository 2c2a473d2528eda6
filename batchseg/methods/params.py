"""Method parameters: a name, a type, a default and the values allowed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from batchseg.errors import UsageError

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One method parameter with its type, default and allowed values.

    ``omit_default``: a parameter added after stores were written is left out of the
    resolved parameters while it has its default (the kernel's own default then applies),
    so the fingerprints and attributes of existing stores stay as they were.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    omit_default: bool = False

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (often a string from the CLI) to this parameter's type."""
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low in _BOOL_TRUE:
                    out: Any = True
                elif low in _BOOL_FALSE:
                    out = False
                else:
                    raise ValueError(value)
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                out = self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(
                f"parameter {self.name!r} expects {self.type.__name__}, got {value!r}"
            ) from None
        if self.type is float and not math.isfinite(out):
            raise UsageError(f"parameter {self.name!r} must be a finite number; got {value!r}")
        if self.choices is not None and out not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise UsageError(f"parameter {self.name!r} must be one of {allowed}; got {out!r}")
        if self.minimum is not None and out < self.minimum:
            raise UsageError(f"parameter {self.name!r} must be >= {self.minimum}; got {out!r}")
        if self.maximum is not None and out > self.maximum:
            raise UsageError(f"parameter {self.name!r} must be <= {self.maximum}; got {out!r}")
        return out
