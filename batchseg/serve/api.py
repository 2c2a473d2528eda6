"""The web app's routes: the page and a read-only JSON/PNG API over one store.

``GET /api/summary``, ``/api/meta``, ``/api/query``, ``/api/images/{image_id}`` and its
``source.png``, ``mask.png``, ``overlay.png``, ``confidence.png`` and ``objects``, and the same
with the id as a parameter (``/api/image?id=``, ``/api/image/mask.png?id=``), which every id
survives (browsers rewrite ``.`` and ``..`` segments of a path). Image ids are looked up in
the store's catalogue; nothing named in a URL is ever opened as a path. Every answer other
than 200 (bad queries and parameters 400, unknown ids and routes 404, methods 405) is
``{"error": "one line"}``; requests for another ``Host`` are refused first (:mod:`.hosts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from batchseg.errors import BatchsegError, ImageError, StoreError, UsageError, one_line
from batchseg.query import Selection
from batchseg.report import pictures
from batchseg.serve.hosts import HostGuard
from batchseg.serve.page import PAGE
from batchseg.serve.state import StoreState

log = logging.getLogger(__name__)

#: Rows per ``/api/query`` answer without ``limit``, and the most one answer holds.
DEFAULT_LIMIT, MAX_LIMIT = 50, 10_000
#: Objects listed per image by ``/api/images/{id}/objects``.
MAX_OBJECTS = 5_000
#: Suffixes of the per-image routes (checked before the plain ``/api/images/{id}``).
PICTURES = {"source.png": "source", "mask.png": "mask", "overlay.png": "overlay"}
PICTURES["confidence.png"] = "confidence"


class HTTPProblem(Exception):
    """An answer other than 200: status code and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AnyPathConvertor(Convertor[str]):
    """Starlette's ``path`` that also matches newlines (an id may hold one)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", AnyPathConvertor())


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPProblem(400, f"{name} must be an integer, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise HTTPProblem(400, f"{name} must be between {low} and {high}")
    return value


def _float(request: Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise HTTPProblem(400, f"{name} must be a number, not {text[:40]!r}") from None
    if not low <= value <= high:  # also refuses nan
        raise HTTPProblem(400, f"{name} must be between {low:g} and {high:g}")
    return value


def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise HTTPProblem(400, "hide must be class ids separated by commas") from None


def _handled(fn: Callable[[StoreState, Request], Response]) -> Callable[[Request], Response]:
    """A route that turns refusals into 400/404 answers with one line (and logs the rest)."""

    def endpoint(request: Request) -> Response:
        state: StoreState = request.app.state.store
        try:
            return fn(state, request)
        except HTTPProblem as exc:
            return _error(exc.status, state.public(str(exc)))
        except UsageError as exc:  # QueryError included
            return _error(400, state.public(one_line(exc)))
        except ImageError as exc:
            return _error(422, state.public(f"cannot read the source image: {one_line(exc)}"))
        except StoreError as exc:
            log.warning("%s: %s", request.url.path, one_line(exc))
            return _error(500, state.public(one_line(exc)))
        except BatchsegError as exc:
            return _error(500, state.public(one_line(exc)))

    return endpoint


def page(state: StoreState, request: Request) -> Response:
    """The app's one page (plain HTML, inline CSS and JS)."""
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": PAGE_CSP})


PAGE_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'"
)


def summary(state: StoreState, request: Request) -> Response:
    """``batchseg stats --json``."""
    return JSONResponse(state.summary())


def meta(state: StoreState, request: Request) -> Response:
    """Kind, classes with colours, columns and which optional maps and tables exist."""
    return JSONResponse(state.meta())


def query(state: StoreState, request: Request) -> Response:
    """``{"total", "offset", "limit", "columns", "rows"}``: the rows of ``batchseg query``."""
    q = request.query_params
    limit = _int(request, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    offset = _int(request, "offset", 0, 0, 1 << 62) or 0
    chosen = Selection(
        q.get("where"), q.get("columns"), q.get("sort"), q.getlist("id"), limit, offset
    )
    plan = chosen.plan(state.columns())
    selection = plan.apply(state.frame(plan.read))
    return JSONResponse(
        {
            "total": selection.total,
            "offset": offset,
            "limit": limit,
            "columns": [str(c) for c in selection.rows.columns],
            "rows": state.public(selection.records(), keep="image_id"),
        }
    )


def _known(state: StoreState, image_id: str) -> str:
    if state.row(image_id) is None:
        raise HTTPProblem(404, f"image {image_id!r} is not in the store")
    return image_id


def image_row(state: StoreState, image_id: str) -> Response:
    """Every column of one image's row."""
    _known(state, image_id)
    plan = Selection(columns="*").plan(state.columns())
    frame = state.frame(plan.read)
    selection = plan.apply(frame.iloc[[state.row(image_id) or 0]])
    return JSONResponse(state.public(selection.records()[0], keep="image_id"))


def _picture(state: StoreState, request: Request, image_id: str, kind: str) -> Response:
    _known(state, image_id)
    view = state.picture_view()
    status = state.status_of(image_id)[0]
    if kind != "source" and status != "done":
        raise HTTPProblem(404, f"image {image_id!r} is {status}: it has no labels")
    if kind == "confidence" and "mean_confidence" not in view.columns():
        raise HTTPProblem(404, "this store has no confidence maps (not a semantic method)")
    array = pictures.picture(
        view,
        image_id,
        kind,
        alpha=_float(request, "alpha", 0.5, 0.0, 1.0),
        size=_int(request, "size", None, 8, 4096),
        hidden=_ids(request.query_params.get("hide")),
        outlines=request.query_params.get("outlines", "1") != "0",
        scale_bar=request.query_params.get("bar", "1") != "0",
        max_pixels=request.app.state.max_pixels,
        channels=request.query_params.get("channels") or None,
    )
    return Response(
        pictures.encode(array, "png"), media_type="image/png", headers={"Cache-Control": "no-cache"}
    )


def objects(state: StoreState, image_id: str) -> Response:
    """The image's rows of the object table (stores measured with objects)."""
    _known(state, image_id)
    view = state.view
    if not view.attrs.get("objects"):
        raise HTTPProblem(404, "this store has no object tables (the job ran without --objects)")
    frame = view.objects(where=f"image_id == {image_id!r}", limit=MAX_OBJECTS)
    return Response(frame.to_json(orient="records"), media_type="application/json")


def image(state: StoreState, request: Request) -> Response:
    """``/api/images/{image_id}``, or one of its pictures or objects (by the last segment).

    When ``{image_id}`` itself ends in a route's suffix (an image named ``x/source.png``) and
    the part before it is not an image, the whole path is taken as the id.
    """
    path: str = request.path_params["image_id"]
    head, _, tail = path.rpartition("/")
    if head and (tail in PICTURES or tail == "objects") and state.row(head) is not None:
        return _part(state, request, head, tail)
    return image_row(state, path)


def image_by_id(state: StoreState, request: Request) -> Response:
    """``/api/image?id=ID`` and ``/api/image/{part}?id=ID``: any id, sent as a parameter."""
    image_id = request.query_params.get("id")
    if image_id is None:
        raise HTTPProblem(400, "id is missing: /api/image?id=IMAGE_ID")
    part = request.path_params.get("part")
    if part is None:
        return image_row(state, image_id)
    if part not in PICTURES and part != "objects":
        raise HTTPProblem(404, f"no such part of an image: {part[:40]!r}")
    return _part(state, request, image_id, part)


def _part(state: StoreState, request: Request, image_id: str, part: str) -> Response:
    if part == "objects":
        return objects(state, image_id)
    return _picture(state, request, image_id, PICTURES[part])


async def _http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown route 404, method 405) as ``{"error": ...}``."""
    assert isinstance(exc, HTTPException)
    message = {404: f"no such page: {request.url.path[:100]!r}", 405: "only GET is answered"}
    return _error(exc.status_code, message.get(exc.status_code, exc.detail), exc.headers)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("%s failed", request.url.path)
    return _error(500, "internal error (the server's log says more)")


def make_app(
    path: str,
    max_pixels: int = pictures.DEFAULT_MAX_PIXELS,
    *,
    hosts: frozenset[str] = frozenset(),
    show_paths: bool = False,
) -> Starlette:
    """The Starlette app serving the store at ``path`` (opened now: StoreError if it is not
    a batchseg store), answering the loopback names and ``hosts`` (see :mod:`.hosts`)."""
    state = StoreState(path, show_paths=show_paths)
    routes = [
        Route("/", _handled(page)),
        Route("/api/summary", _handled(summary)),
        Route("/api/meta", _handled(meta)),
        Route("/api/query", _handled(query)),
        Route("/api/image", _handled(image_by_id)),
        Route("/api/image/{part}", _handled(image_by_id)),
        Route("/api/images/{image_id:anypath}", _handled(image)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(HostGuard, allowed=hosts)],
        exception_handlers={HTTPException: _http_problem, Exception: _crash},
    )
    app.state.store = state
    app.state.max_pixels = max_pixels
    return app
