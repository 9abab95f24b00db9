"""Control per band: class guidance and condition dropping, noise splitting, band editing, restoration."""

from .editing import EditOutput, edit_bands, integrate, invert, psnr
from .guidance import ClassConditional, class_conditional, class_labels, guided, null_label
from .noise import band_mask, mix_bands, split_noise
from .restore import Degradation, RestoreOutput, baseline, make_degradation, restore

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
    "psnr",
    "Degradation",
    "make_degradation",
    "restore",
    "RestoreOutput",
    "baseline",
]
