"""The bottom layer: what every other part of kflow shares (errors, atomic file I/O, the
checkpoint format). Imports nothing from the rest of kflow."""
