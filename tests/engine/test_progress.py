import io

from deepclust_cli.engine.progress import Progress, format_seconds


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(range(5), desc="spectral net", unit="epoch", stream=stream, interval=0.0)
    for _ in progress:
        progress.set(loss=0.5)
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 5  # one per update with interval 0; the final state is not repeated
    assert lines[-1].startswith("spectral net  epoch 5/5  100%  loss=0.5  elapsed 0:00:00")
    assert "\r" not in stream.getvalue()


def test_eta_appears_midway():
    stream = io.StringIO()
    progress = Progress(total=4, desc="x", stream=stream, interval=1e9)
    progress.update(2)
    assert "eta" in progress.line() and "2/4" in progress.line() and "50%" in progress.line()
    assert stream.getvalue() == ""  # throttled: nothing printed before the interval passes
    progress.close()
    assert stream.getvalue().count("\n") == 1


def test_disabled_progress_is_silent():
    stream = io.StringIO()
    for _ in Progress(range(3), stream=stream, interval=0.0, enabled=False):
        pass
    assert stream.getvalue() == ""


def test_format_seconds():
    assert format_seconds(3725) == "1:02:05"

