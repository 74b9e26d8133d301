"""mipmaker: exact, fast image pyramids (mip levels) for connectomics volumes.

The modern API is `downsample` and `pyramid`; `downsample_with_averaging`,
`downsample_segmentation`, `downsample_with_striding`,
`downsample_with_min_pooling` and `downsample_with_max_pooling` are drop-in
replacements for tinybrain's functions (``import mipmaker as tinybrain``).
"""

from importlib.metadata import PackageNotFoundError, version

from ._downsample import downsample, pyramid
from ._tinybrain import (
    downsample_segmentation,
    downsample_with_averaging,
    downsample_with_max_pooling,
    downsample_with_min_pooling,
    downsample_with_striding,
)

try:
    __version__ = version("mipmaker")
except PackageNotFoundError:  # running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "downsample",
    "pyramid",
    "downsample_with_averaging",
    "downsample_segmentation",
    "downsample_with_striding",
    "downsample_with_min_pooling",
    "downsample_with_max_pooling",
    "__version__",
]
