"""Progress for long loops: a live bar on a terminal, plain timestamped lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress(Iterable[T]):
    """Wrap an iterable (or count updates) and show how far it got, with rate and ETA.

    On a terminal this is a tqdm bar. Otherwise it prints one line at most every ``interval``
    seconds and a last line when done, e.g.
    ``spectral net  epoch 40/100  40%  loss=0.0123  elapsed 0:00:12  eta 0:00:18``.
    """

    def __init__(
        self,
        iterable: Optional[Iterable[T]] = None,
        *,
        total: Optional[int] = None,
        desc: str = "",
        unit: str = "it",
        stream: Optional[TextIO] = None,
        interval: float = 10.0,
        enabled: bool = True,
        bar: Optional[bool] = None,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self.count = 0
        self.printed_count = 0
        self.postfix: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.last_line = self.started
        use_bar = self.stream.isatty() if bar is None else bar
        self._bar = (
            tqdm(total=self.total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True, leave=False)
            if enabled and use_bar
            else None
        )

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "Progress was created without an iterable; call update()"
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def set(self, **values: Any) -> None:
        """Show ``key=value`` beside the count (loss, lr, ...)."""
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix({k: _short(v) for k, v in self.postfix.items()}, refresh=False)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.perf_counter() - self.last_line >= self.interval:
            self._print_line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.count != self.printed_count:
            self._print_line()
        self.enabled = False

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        parts = [self.desc] if self.desc else []
        if self.total:
            parts.append(f"{self.unit} {self.count}/{self.total}")
            parts.append(f"{100 * self.count / self.total:.0f}%")
        else:
            parts.append(f"{self.unit} {self.count}")
        parts += [f"{key}={_short(value)}" for key, value in self.postfix.items()]
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.total and self.count:
            parts.append(f"eta {format_seconds(elapsed / self.count * (self.total - self.count))}")
        return "  ".join(parts)

    def _print_line(self) -> None:
        self.last_line = time.perf_counter()
        self.printed_count = self.count
        print(self.line(), file=self.stream, flush=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
