"""Turn parsed options into a stage's config dataclass (plain keyword arguments)."""
import argparse
import dataclasses
from typing import Type, TypeVar

T = TypeVar("T")


def config_from_args(cls: Type[T], args: argparse.Namespace, **overrides) -> T:
    """Build ``cls`` from the options whose names match its fields."""
    values = dict(vars(args))
    if "quiet" in values:
        values["verbose"] = not values.pop("quiet")
    if "no_pretrained" in values:
        values["pretrained"] = not values.pop("no_pretrained")
    if "loss_feature" in values:
        values["norm_features"] = values.pop("loss_feature") == "bn"
    if "cluster_option" in values:
        from ..clustering import parse_options

        values["cluster_options"] = parse_options(values.pop("cluster_option"))
    if values.get("epochs_decay") == 0:
        values["epochs_decay"] = None  # 0 on the command line: constant lr
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in values.items() if k in names}
    kwargs.update(overrides)
    return cls(**kwargs)
