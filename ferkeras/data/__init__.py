"""Data: FER2013 sources (folders, CSV), augmentation and the tf.data pipeline."""

from ferkeras.data.sources import Split, load_dataset, load_split

__all__ = ["Split", "load_dataset", "load_split"]
