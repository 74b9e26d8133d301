"""Differential fuzzer: mipmaker against the NumPy reference (tests/reference.py).

``cases.py`` draws case specs, ``check.py`` runs one, ``test_fuzz.py`` is the
short deterministic run in the default test suite and ``run.py`` the long
run (``python tests/fuzz/run.py --minutes 30`` or ``python -m tests.fuzz``).
"""
