"""Config fields that carry their own command-line option.

A stage's settings are a dataclass; each field is declared once with
:func:`option`: its default, its help text and how the command line spells
it. ``dualref.cli`` generates the argparse options from these fields, so a
default is written in exactly one place.
"""
import argparse
import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Sequence

# argparse groups, in the order --help lists them
DATA, MODEL, OPTIM, LABELS, LOSSES, EVAL, RUNTIME = (
    "data", "model", "optimisation", "pseudo labels", "losses", "evaluation", "runtime")
GROUPS = (DATA, MODEL, OPTIM, LABELS, LOSSES, EVAL, RUNTIME)


class Codec(NamedTuple):
    """How a field's value and its option's value differ (e.g. ``--loss-feature bn`` <-> True)."""

    to_field: Callable[[Any], Any]  # parsed option -> field value
    to_option: Callable[[Any], Any]  # field value -> option value (shown as the default)


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Optional[Callable] = None,
           group: str = RUNTIME, flags: Sequence[str] = (), codec: Optional[Codec] = None,
           **argparse_kwargs: Any) -> Any:
    """A dataclass field with its command-line option.

    ``flags`` default to ``--<name with dashes>``; ``argparse_kwargs`` (type,
    choices, action, nargs, metavar, required) go to ``add_argument``.
    """
    metadata = {"help": help, "group": group, "flags": tuple(flags), "codec": codec,
                "argparse": argparse_kwargs}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_KEEP = object()


def like(cls: type, name: str, default: Any = _KEEP) -> Any:
    """``cls``'s field ``name`` (help, flags, checks), with its default or another one."""
    source = cls.__dataclass_fields__[name]
    if default is _KEEP:
        default = field_default(source)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value),
                                 metadata=source.metadata)
    return dataclasses.field(default=default, metadata=source.metadata)


def field_default(f: dataclasses.Field) -> Any:
    """The default of a dataclass field (calling its factory); MISSING when it has none."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def option_default(f: dataclasses.Field) -> Any:
    """What the command line shows as the field's default (after its codec)."""
    value = field_default(f)
    codec = f.metadata.get("codec")
    return codec.to_option(value) if codec is not None and value is not dataclasses.MISSING else value


def _checked(cast: Callable[[str], Any], ok: Callable[[Any], bool], expected: str,
             name: str) -> Callable[[str], Any]:
    """An argparse ``type`` that converts with ``cast`` and rejects values failing ``ok``."""
    def parse(text: str) -> Any:
        value = cast(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


positive_int = _checked(int, lambda v: v > 0, "a positive integer", "positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0", "integer")
fraction = _checked(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)", "fraction")
unit_interval = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]", "number")
open_unit = _checked(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]", "number")
non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0", "number")
positive_float = _checked(float, lambda v: v > 0, "a number > 0", "number")
smoothing = _checked(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)", "number")
at_least_one = _checked(float, lambda v: v >= 1, "a number >= 1", "number")


def rho_value(text: str) -> Any:
    """``--rho``: a fraction in (0, 1), or ``auto``."""
    return "auto" if text == "auto" else fraction(text)


rho_value.__name__ = "rho"
