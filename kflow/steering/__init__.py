"""Control per band: class guidance and condition dropping, noise splitting, band editing."""
from .editing import EditOutput, edit_bands, generate, invert, psnr
from .guidance import ClassConditional, class_conditional, null_label
from .noise import band_mask, split_noise

__all__ = ["ClassConditional", "class_conditional", "null_label", "band_mask", "split_noise", "invert", "generate",
           "edit_bands", "EditOutput", "psnr"]
