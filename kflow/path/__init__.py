from .bumps import BUMPS, get_bump
from .density import K_DENSITIES, draw_k
from .kflow_path import ALLOCATIONS, ORDERS, KFlowPath, PathSample

__all__ = ["KFlowPath", "PathSample", "BUMPS", "get_bump", "ORDERS", "ALLOCATIONS", "K_DENSITIES", "draw_k"]
