"""Control per band: class guidance and condition dropping, noise splitting, band editing, restoration."""

from .degradations import Degradation, baseline, make_degradation
from .editing import EditOutput, edit_bands, integrate, invert, transport
from .guidance import ClassConditional, class_conditional, class_labels, guided, null_label
from .noise import band_mask, mix_bands, split_noise
from .restore import RestoreOutput, restore

__all__ = [
    "ClassConditional",
    "class_conditional",
    "class_labels",
    "guided",
    "null_label",
    "band_mask",
    "split_noise",
    "mix_bands",
    "invert",
    "integrate",
    "edit_bands",
    "EditOutput",
    "transport",
    "Degradation",
    "make_degradation",
    "restore",
    "RestoreOutput",
    "baseline",
]
