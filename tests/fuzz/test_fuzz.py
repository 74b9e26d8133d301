"""The short fuzz run of the default test suite: a fixed seed, a fixed budget.

``MIPMAKER_FUZZ_EXAMPLES`` changes the number of cases; the long run with
crash isolation is ``python tests/fuzz/run.py --minutes N``.
"""

import os

from hypothesis import HealthCheck, given, settings

from .cases import specs
from .check import run_case

EXAMPLES = int(os.environ.get("MIPMAKER_FUZZ_EXAMPLES", "7000"))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(spec=specs())
def test_fuzz_matches_reference(spec):
    run_case(spec)
