"""Waiting for something to happen.

A test that sleeps a fixed time to let something happen is slow when the machine is fast and flaky when it is
busy. ``eventually`` polls a condition instead: it returns as soon as the condition holds, and after
``timeout`` seconds it fails with what was awaited and the last value seen. Use :func:`eventually` in async
tests and :func:`eventually_sync` in the (synchronous) browser tests.

A sleep that deliberately lets time pass, to show that something does *not* happen, is not synchronisation:
it stays a sleep, with a comment saying so.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _failure(what: str, timeout: float, last: object, detail: Callable[[], str] | None) -> AssertionError:
    extra = f"; {detail()}" if detail is not None else ""
    return AssertionError(f"{what}: not within {timeout} s (last value: {last!r}){extra}")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    timeout: float = ...,
    *,
    what: str = ...,
    interval: float = ...,
    until: Callable[[T], object] = ...,
    detail: Callable[[], str] | None = ...,
) -> float: ...


@overload
async def eventually(
    condition: Callable[[], T],
    timeout: float = ...,
    *,
    what: str = ...,
    interval: float = ...,
    until: Callable[[T], object] = ...,
    detail: Callable[[], str] | None = ...,
) -> float: ...


async def eventually(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    *,
    what: str = "condition",
    interval: float = 0.05,
    until: Callable[[Any], object] = bool,
    detail: Callable[[], str] | None = None,
) -> float:
    """Poll ``condition()`` (awaited if it returns an awaitable) until ``until(value)`` holds; return the
    seconds it took.

    A plain ``condition`` runs on the event loop, so it must not block for long (a quick admin request is
    fine). On timeout raise AssertionError naming ``what``, the last value and ``detail()``."""
    start = time.monotonic()
    while True:
        value = condition()
        last = await value if inspect.isawaitable(value) else value
        if until(last):
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise _failure(what, timeout, last, detail)
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    timeout: float = 10.0,
    *,
    what: str = "condition",
    interval: float = 0.1,
    until: Callable[[T], object] = bool,
    detail: Callable[[], str] | None = None,
) -> float:
    """:func:`eventually` for synchronous code (Playwright's sync API, Marionette, child processes)."""
    start = time.monotonic()
    while True:
        last = condition()
        if until(last):
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise _failure(what, timeout, last, detail)
        time.sleep(interval)
