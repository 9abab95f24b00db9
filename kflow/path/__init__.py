from .bumps import BUMPS, get_bump
from .density import K_DENSITIES, STAGE_BATCHES, draw_k
from .kflow_path import KFlowPath, PathSample
from .schedule import ALLOCATIONS, ORDERS, BandSchedule

__all__ = [
    "KFlowPath",
    "PathSample",
    "BandSchedule",
    "BUMPS",
    "get_bump",
    "ORDERS",
    "ALLOCATIONS",
    "K_DENSITIES",
    "STAGE_BATCHES",
    "draw_k",
]
