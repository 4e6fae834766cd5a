"""Command-line options generated from a stage's config dataclass (dualref/configs.py)."""
import argparse
import dataclasses
from typing import Any, Dict, Optional, Type, TypeVar

from ..utils.fields import GROUPS, RUNTIME, option_default

T = TypeVar("T")

# Options of the original drivers that change nothing here; accepted so their
# command lines keep working, and never passed on.
COMPAT: Dict[str, Dict[str, Any]] = {
    "momentum": dict(flags=("--momentum",), type=float, default=0.9,
                     help="unused by Adam; accepted for the original command line"),
    "rr_gpu": dict(flags=("--rr-gpu",), action="store_true",
                   help="accepted for compatibility; the Jaccard distance runs on --device"),
    "cut_at_pooling": dict(flags=("--cut_at_pooling",), action="store_true",
                           help="accepted for compatibility with the original CLI; no effect"),
}
# Options of the command line itself, not of a stage.
CLI_ONLY = {"debug": dict(flags=("--debug",), action="store_true",
                          help="show full tracebacks")}


def option_fields(cls: type) -> list:
    """The fields of ``cls`` that its driver offers as options."""
    fixed = set(getattr(cls, "FIXED", ()))
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.name not in fixed]


def flags_of(f: dataclasses.Field) -> tuple:
    """A field's flags: declared ones, else ``--name-with-dashes``."""
    return f.metadata["flags"] or ("--" + f.name.replace("_", "-"),)


def _help(text: str, default: Any, action: Any) -> str:
    if action in ("store_true", "store_false") or default in (None, "", [], {}) \
            or "default" in text:
        return text
    shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    return f"{text} (default: {shown})".replace("%", "%%")


def build_parser(cls: type, description: str, prog: Optional[str] = None
                 ) -> argparse.ArgumentParser:
    """argparse options for every option field of ``cls``, defaults taken from the fields."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for f in option_fields(cls):
        kwargs = dict(f.metadata["argparse"])
        if callable(kwargs.get("choices")):
            kwargs["choices"] = kwargs["choices"]()
        if kwargs.pop("positional", False):
            parser.add_argument(f.name, help=f.metadata["help"], **kwargs)
            continue
        default = option_default(f)
        kwargs["help"] = _help(f.metadata["help"], default, kwargs.get("action"))
        groups[f.metadata["group"]].add_argument(*flags_of(f), dest=f.name, default=default,
                                                 **kwargs)
    extra = {**{name: COMPAT[name] for name in getattr(cls, "COMPAT", ())}, **CLI_ONLY}
    for name, spec in extra.items():
        spec = dict(spec)
        groups[RUNTIME].add_argument(*spec.pop("flags"), dest=name, **spec)
    return parser


def config_from_args(cls: Type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """``cls`` from parsed options (through each field's codec); an unknown option is a bug."""
    values = dict(vars(args))
    for name in list(COMPAT) + list(CLI_ONLY):
        values.pop(name, None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TypeError(f"options {unknown} reach no field of {cls.__name__}")
    kwargs = {}
    for name, value in values.items():
        codec = fields[name].metadata.get("codec")
        kwargs[name] = codec.to_field(value) if codec is not None else value
    kwargs.update(overrides)
    return cls(**kwargs)


def flag_for(parser: argparse.ArgumentParser, dest: str) -> str:
    """The long flag of the option that sets ``dest`` (``dest`` itself if there is none)."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            longs = [s for s in action.option_strings if s.startswith("--")]
            return (longs or action.option_strings)[0]
    return dest
