"""MOFO: its code is GPL-3.0, so pcbm does not ship it. A user who installs it (or any other
backbone) exposes a builder through the ``pcbm.backbones`` entry-point group, e.g. in their package's
``pyproject.toml``::

    [project.entry-points."pcbm.backbones"]
    mofo = "my_mofo_bridge:build"   # build(checkpoint, pooling, input_size) -> nn.Module with num_features

``--backbones mofo`` then calls it; without the entry point it fails with this instruction.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pcbm.benchmark.zoo import BackboneSpec, register_backbone, register_family
from pcbm.errors import InputError

GROUP = "pcbm.backbones"

register_backbone(BackboneSpec("mofo", "mofo", "mofo", is_vit=True, pooling="avg",
                               note="GPL-3.0, not shipped: loaded only through a user-installed entry point"))


@register_family("mofo")
def build_plugin(spec: BackboneSpec, checkpoint: str | None, pooling: str, input_size: tuple[int, int],
                 overrides: dict[str, Any], config: str | None = None) -> Any:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == spec.name]
    if not found:
        raise InputError(f"backbone {spec.name!r} is not installed: MOFO is GPL-3.0 and pcbm does not ship it; install "
                         f"it yourself and expose a builder as entry point '{spec.name}' in group '{GROUP}' "
                         "(see pcbm/benchmark/zoo/mofo.py)")
    model = found[0].load()(checkpoint=checkpoint, pooling=pooling, input_size=input_size)
    if not hasattr(model, "num_features"):
        raise InputError(f"the {spec.name} builder must return a module with a num_features attribute")
    return model
