"""A configuration page whose service is down: a GET shows the page saying so (the console itself works);
a form post goes back to ``back`` saying nothing was changed. Never a 5xx page for someone else's outage."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from fastapi import Request
from fastapi.responses import Response

from leadflow_console.clients import ServiceUnavailable
from leadflow_console.templating import redirect, render

P = ParamSpec("P")


def degrades(back: str) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Wrap a page handler (its ``request`` passed by keyword, as FastAPI does) so that a service it needs
    being unavailable is told on the page, or on ``back`` after a form post."""

    def decorate(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        @functools.wraps(handler)
        async def handle(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return await handler(*args, **kwargs)
            except ServiceUnavailable as exc:
                request = kwargs["request"]
                assert isinstance(request, Request)
                service = exc.service.capitalize()
                if request.method == "GET":
                    return await render(request, "unavailable.html", {"service": service, "back": back})
                return redirect(request, back, f"{service} is unavailable, so nothing was changed; try again "
                                               "shortly.", kind="error")

        return handle

    return decorate
