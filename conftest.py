"""Project-wide pytest options (owned by tb/).

* ``--full``: also run tests marked ``slow`` (the full parameter sweep).
  Without it they are skipped unless selected explicitly with ``-m slow``.
* tests marked ``soak`` run only when selected with ``-m soak``.
"""

import pytest


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
