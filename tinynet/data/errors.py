"""The one exception type of ``tinynet.data``."""


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt, or does not match its checksum.

    A subclass of ``ValueError`` so that ``except ValueError`` keeps working; the
    message always names the file (or folder) involved and what was expected
    versus what was found.
    """
