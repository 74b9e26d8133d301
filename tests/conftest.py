"""Test session setup: report which kernels are under test."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # `from reference import ...` in any import mode


def pytest_report_header(config):
    import numpy as np

    import mipmaker
    from mipmaker import _core

    return [
        f"mipmaker {mipmaker.__version__}, numpy {np.__version__}",
        f"kernels: {_core.isa()} (available: {', '.join(_core.available_isas())}; "
        f"MIPMAKER_ISA={os.environ.get('MIPMAKER_ISA', '')!r})",
    ]
