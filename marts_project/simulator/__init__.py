"""Deterministic, seeded source systems that write realistic landing files."""

from marts_project.simulator.core import (
    FAR_FUTURE,
    LandedFile,
    SimConfig,
    land,
    renderers,
    restate,
    revision_at,
)

__all__ = ["FAR_FUTURE", "renderers", "LandedFile", "SimConfig", "land", "restate", "revision_at"]
