import logging
import warnings

from deepclust_cli.engine.context import Context


def test_library_warnings_become_one_log_line_each(caplog):
    with caplog.at_level(logging.WARNING, logger="deepclust"):
        with Context().warnings_as_log("solver", rewrite=lambda m: None if "drop" in m else m):
            warnings.warn("first line\nsecond line")
            warnings.warn("first line\nsecond line")
            warnings.warn("drop me")
    assert [r.getMessage() for r in caplog.records] == ["solver: first line second line"]
