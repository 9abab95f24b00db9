from .datasets import DATASETS, FASHION_MNIST_CLASSES, DataError, ImageData, fit_size, load_dataset, load_images

__all__ = ["load_dataset", "ImageData", "DataError", "DATASETS", "FASHION_MNIST_CLASSES", "fit_size", "load_images"]
