"""Every asset of the deployment, layer by layer: what the jobs select and the planner reads."""

from marts_project.intermediate.assets import intermediate_assets
from marts_project.marts import ALL_MARTS
from marts_project.raw.assets import raw_assets
from marts_project.staging.assets import staging_assets

SHARED_LAYERS = [*raw_assets, *staging_assets, *intermediate_assets]


def all_assets() -> list:
    """Every asset definition (the layers, then the marts)."""
    return [*SHARED_LAYERS, *(m.asset for m in ALL_MARTS)]
