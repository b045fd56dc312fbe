"""Errors raised by the dataset readers."""


class DatasetError(ValueError):
    """A raw dataset that cannot be read as a whole (its message names the file and the problem)."""


class ImageError(ValueError):
    """One image that cannot be used; the builder skips it and lists it in the manifest."""


class BuiltSetError(DatasetError):
    """The built set on disk is damaged or its two files do not belong together."""
