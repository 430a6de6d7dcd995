"""The one place that defines the emotion classes and their order."""

from __future__ import annotations

#: Class names in model output order (alphabetical, the FER2013 image-folder order).
CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES = len(CLASS_NAMES)

#: ``fer2013.csv`` ``emotion`` codes 0..6 mean these classes (Goodfellow et al.).
CSV_CODE_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Maps a ``fer2013.csv`` emotion code onto an index into :data:`CLASS_NAMES`.
CSV_CODE_TO_INDEX: dict[int, int] = {code: CLASS_NAMES.index(name) for code, name in enumerate(CSV_CODE_NAMES)}

#: ``fer2013.csv`` ``Usage`` values and the split names we use for them.
CSV_USAGE_TO_SPLIT: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


#: Other names data sets give these classes (folder names of RAF-DB, AffectNet, ExpW
#: and CK+ exports, KDEF-style adjectives), case-insensitive.
CLASS_ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}


def class_index(name: str) -> int:
    """Return the output index of class ``name`` or an alias of it; raise ``ValueError`` naming the valid ones."""
    key = name.strip().lower()
    try:
        return CLASS_NAMES.index(CLASS_ALIASES.get(key, key))
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}") from None
