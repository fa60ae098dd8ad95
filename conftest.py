"""Project-wide pytest options (owned by tb/).

* ``--full``: also run tests marked ``slow`` (the full parameter sweep).
  Without it they are skipped unless selected explicitly with ``-m slow``.
* tests marked ``soak`` run only when selected with ``-m soak``.
* with ``CI`` set in the environment, hypothesis uses the derandomized
  ``ci`` profile, so a CI run is reproducible.
"""

import os

import pytest

try:  # CI runs are reproducible: hypothesis draws the same examples every time.
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra
    pass


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="run the full sweep (tests marked slow)")


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("markexpr") or ""
    full = config.getoption("--full") or "slow" in markexpr
    soak = "soak" in markexpr
    skip_slow = pytest.mark.skip(reason="slow: run with --full or -m slow")
    skip_soak = pytest.mark.skip(reason="soak: run with -m soak")
    for item in items:
        if "soak" in item.keywords and not soak:
            item.add_marker(skip_soak)
        elif "slow" in item.keywords and not full:
            item.add_marker(skip_slow)
