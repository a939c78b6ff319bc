"""Job params declared once: a frozen dataclass per job type whose fields carry their rules.

Each field is made with `param(...)`: its type comes from the annotation, its default and rules from the
call. Workflow validation, the CLI options, the graph editor's inspector and the README's params table all
read these declarations (see registry.py), so a param is added in one place.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from wsidesk.core.errors import JobError
from wsidesk.core.values import shown

if TYPE_CHECKING:
    from wsidesk.core.jobs.context import JobFunction

_META = "wsidesk.param"
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One param: what it is, its default, and which values it takes."""

    name: str
    type: type  # int, float, str or bool
    default: Any  # None: decided when the job runs (`default_text` says how)
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # value > minimum instead of >=
    choices: tuple[str, ...] = ()
    path: bool = False  # a file path is accepted, relative to the workflow's folder (the inspector offers a picker)
    names: tuple[str, ...] = ()  # for a path param: names it takes instead of a path (e.g. pretrained models)
    file_suffixes: tuple[str, ...] = ()  # for a path param: only values ending so are files (others are names)
    default_text: str = ""  # shown for a None default, e.g. "the model's"
    example: Any = None  # a typical value, offered when the param is switched on with nothing to inherit

    def is_file(self, value: Any) -> bool:
        """Whether `value` names a file (to resolve and check) rather than one of `names`."""
        if not (self.path and isinstance(value, str) and value not in self.names):
            return False
        return not self.file_suffixes or value.lower().endswith(self.file_suffixes)

    @property
    def starter(self) -> Any:
        return self.default if self.default is not None else self.example

    @property
    def option(self) -> str:
        """The CLI option: `tile_size` -> `--tile-size`."""
        return "--" + self.name.replace("_", "-")

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return self.default_text or "unset"
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)

    def accepts_type(self, value: Any) -> bool:
        # bool subclasses int, but `tile_size: true` is a mistake, not 1.
        if isinstance(value, bool):
            return self.type is bool
        if self.type is float:
            return isinstance(value, int | float)
        return isinstance(value, self.type)

    def rule(self) -> str:
        """What a valid value is, in words: 'a positive integer', 'a number between 0 and 1', ..."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        kind = _TYPE_NAMES[self.type]
        noun = kind.removeprefix("an ").removeprefix("a ")
        unit = f" ({self.unit})" if self.unit else ""
        lo, hi = self.minimum, self.maximum
        if lo == 0 and self.exclusive_minimum:
            text = f"a positive {noun}" + (f" up to {_num(hi)}" if hi is not None else "")
        elif lo is not None and hi is not None:
            text = f"{kind} between {_num(lo)} and {_num(hi)}"
        elif lo is not None:
            text = f"{kind} {'>' if self.exclusive_minimum else '>='} {_num(lo)}"
        elif hi is not None:
            text = f"{kind} <= {_num(hi)}"
        else:
            text = kind
        return text + unit

    def problem(self, value: Any) -> str | None:
        """Why `value` is not valid for this param, or None."""
        if not self.accepts_type(value):
            return f"must be {_TYPE_NAMES[self.type]}, not {type(value).__name__} {shown(value)}"
        ok = True
        if self.choices:
            ok = value in self.choices
        elif self.type in (int, float):
            ok = math.isfinite(value)
            if self.minimum is not None:
                ok = ok and (value > self.minimum if self.exclusive_minimum else value >= self.minimum)
            if self.maximum is not None:
                ok = ok and value <= self.maximum
        return None if ok else f"must be {self.rule()}, got {shown(value)}"


def _num(value: float) -> str:
    return f"{value:g}"


def param(
    default: Any,
    *,
    help: str,  # noqa: A002 - argparse's word for it
    unit: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    choices: tuple[str, ...] = (),
    path: bool = False,
    names: tuple[str, ...] = (),
    file_suffixes: tuple[str, ...] = (),
    default_text: str = "",
    example: Any = None,
) -> Any:
    """A params-class field; `default` None means the job decides at run time (`default_text` says how)."""
    spec = {
        "default": default,
        "help": help,
        "unit": unit,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "choices": choices,
        "path": path,
        "names": names,
        "file_suffixes": file_suffixes,
        "default_text": default_text,
        "example": example,
    }
    return field(default=default, metadata={_META: spec})


@dataclass(frozen=True, slots=True)
class JobParams:
    """Base of every job type's params class: typed values with their declared defaults."""

    _specs: ClassVar[tuple[ParamSpec, ...]] = ()
    # Every job type has it (the result cache, wsidesk/core/cache): false always recomputes.
    cache: bool = param(True, help="reuse a finished result with the same fingerprint instead of recomputing it")

    @classmethod
    def specs(cls) -> tuple[ParamSpec, ...]:
        """The declared params, in declaration order; the ones every job type has come last."""
        if "_specs" not in cls.__dict__ or not cls.__dict__["_specs"]:
            hints = typing.get_type_hints(cls)
            specs = []
            fields = dataclasses.fields(cls)
            common = {f.name for f in dataclasses.fields(JobParams)}
            for f in [*(f for f in fields if f.name not in common), *(f for f in fields if f.name in common)]:
                meta = f.metadata[_META]
                kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
                specs.append(ParamSpec(name=f.name, type=kind, **meta))
            cls._specs = tuple(specs)
        return cls._specs

    @classmethod
    def spec(cls, name: str) -> ParamSpec:
        return next(s for s in cls.specs() if s.name == name)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any], *, where: str = "") -> Self:
        """Typed params from a job's merged params (workflow defaults + its own); null means unset.

        Keys of other job types are ignored, since a workflow's `defaults` apply to jobs of every type.
        Values were checked when the workflow was validated; a job run without that still gets a clear error.
        """
        values: dict[str, Any] = {}
        for spec in cls.specs():
            value = params.get(spec.name)
            if value is None:
                continue
            if problem := spec.problem(value):
                msg = f"{where}: param {spec.name!r} {problem}" if where else f"param {spec.name!r} {problem}"
                raise JobError(msg)
            values[spec.name] = float(value) if spec.type is float else value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class JobType:
    name: str
    summary: str  # one line, for the README and the editor's palette
    params: type[JobParams]
    run: JobFunction
    takes_image: bool  # runs on a slide (`image:`); otherwise on the outputs of `depends_on`

    def spec(self, name: str) -> ParamSpec | None:
        return next((s for s in self.params.specs() if s.name == name), None)
