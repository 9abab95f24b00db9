"""Molecular assembly: 17-molecule crystal clusters (crystals.py), rigid bodies (rigid.py) and
the assembly metrics (metrics.py)."""
