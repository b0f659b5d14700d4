"""What the browser sees when something fails: a page that says what, with the right
status, and never a traceback."""

from __future__ import annotations

from aiohttp import web

from waypost import events
from waypost.console.render import Handler, render
from waypost.store.base import StoreError


class PageError(Exception):
    """A request the console cannot answer as asked: the status and what to tell."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect
        title = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return _page(request, exc.status, title or exc.reason, "")
    except PageError as exc:
        return _page(request, exc.status, exc.title, exc.detail)
    except StoreError as exc:
        return _page(
            request,
            503,
            "The MTA's data could not be read or changed",
            f"{exc}. This request changed nothing; try again, and if it fails again, "
            "`waypost check` verifies the MTA database.",
        )
    except Exception as exc:
        # Our own bug: logged where bugs are reported, and a plain page for the browser.
        events.emit(events.UNEXPECTED_ERROR, component="console", error=repr(exc))
        return _page(request, 500, "The console failed", "The event log says what happened.")


def _page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return render(request, "error.html", status=status, title=title, detail=detail)
