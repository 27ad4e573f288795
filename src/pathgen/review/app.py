"""The review app: FastAPI routes over a run directory, and static HTML/JS (no build step).

Security, since the app serves a run's images and takes writes:

- a token, when set, is required on every request (header ``X-Review-Token``, or the
  ``review_token`` cookie that ``/?token=...`` sets); :mod:`pathgen.review.serve` refuses to bind
  anything but loopback without one;
- without a token, requests must name a loopback ``Host`` (a DNS-rebinding page cannot reach it);
- a write needs ``Content-Type: application/json`` and, when the browser sends an ``Origin``, one
  that matches the ``Host`` (another site's page cannot post decisions);
- images are addressed by pair number, never by path; the one route that serves files
  (``/files/...``) resolves the path and serves only files inside the run's ``audit/`` and
  ``export/`` folders: anything else, ``..`` included, is a 404;
- the page puts data into the DOM with ``textContent`` only, never ``innerHTML``.
"""

from __future__ import annotations

import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from pathgen.audit.images import PairImages, export_image_settings
from pathgen.review.pairs import Pair, load_pairs
from pathgen.review.store import ReviewStore, check_decision
from pathgen.rundir import RunDir

TOKEN_HEADER = "X-Review-Token"
TOKEN_COOKIE = "review_token"
SERVED_FOLDERS = ("audit", "export")
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _static(name: str) -> bytes:
    return resources.files("pathgen.review").joinpath("static", name).read_bytes()


def confined_file(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``root/audit`` or ``root/export``, or None (never outside)."""
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    allowed = [(base / f).resolve() for f in SERVED_FOLDERS]
    if not any(target.is_relative_to(a) and target != a for a in allowed):
        return None
    return target if target.is_file() else None


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(run_root: str | Path, token: str | None = None, context_length: int = 77) -> Any:
    """The FastAPI app reviewing ``run_root``; ``token`` guards every route when given."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, Response

    from pathgen.agents.fit import count_tokens
    from pathgen.review.context import context_jpeg
    from pathgen.review.curate import reviews_path

    run = RunDir(run_root)
    pairs, slides = load_pairs(run)
    count_tokens("warm up")  # loads the CLIP tokenizer now, not on the first reviewer's first pair
    by_id = {p.tile_id: p for p in pairs}
    store = ReviewStore(reviews_path(run.root))
    images = PairImages(run, *export_image_settings(run))
    app = FastAPI(title="pathgen review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if token is not None:
            given = (
                request.headers.get(TOKEN_HEADER)
                or request.cookies.get(TOKEN_COOKIE)
                or request.query_params.get("token")
                or ""
            )
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid review token is required"}, status_code=401)
        elif _host_name(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return JSONResponse({"detail": "this app only answers to localhost"}, status_code=403)
        if request.method == "POST":
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return JSONResponse({"detail": "send application/json"}, status_code=415)
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1].lower() != request.headers.get("host", "").lower():
                return JSONResponse({"detail": "cross-origin write refused"}, status_code=403)
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            # data: images and inline styles for the self-contained audit report (it has no scripts)
            "default-src 'self'; img-src 'self' data:; script-src 'self'; "
            "style-src 'self' 'unsafe-inline'; object-src 'none'"
        )
        return response

    def pair_at(index: str) -> Pair:
        """The pair a URL names by number; anything else (a path, a negative) is a 404."""
        if not index.isdigit() or not 0 <= int(index) < len(pairs):
            raise HTTPException(404, "no such pair")
        return pairs[int(index)]

    def status_of(pair: Pair, latest: dict[str, Any]) -> dict[str, Any]:
        d = latest.get(pair.tile_id)
        return {
            "status": d.decision if d else "pending",
            "reviewer": d.reviewer if d else None,
            "review_caption": d.caption if d else None,
        }

    @app.get("/")
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/api/pairs")
    def list_pairs(project: str = "", flag: str = "", reason: str = "", status: str = "") -> dict[str, Any]:
        latest = store.latest()
        rows = []
        for p in pairs:
            st = status_of(p, latest)
            if project and p.project != project:
                continue
            if flag and flag not in p.flags and not (flag == "(none)" and not p.flags):
                continue
            if reason and p.reason != reason:
                continue
            if status and st["status"] != status:
                continue
            rows.append({"index": p.index, "tile_id": p.tile_id, "project": p.project, **st})
        counts: dict[str, int] = {}
        for p in pairs:
            s = status_of(p, latest)["status"]
            counts[s] = counts.get(s, 0) + 1
        return {
            "total": len(pairs),
            "pairs": rows,
            "counts": counts,
            "facets": {
                "project": sorted({p.project for p in pairs if p.project}),
                "flag": sorted({f for p in pairs for f in p.flags}),
                "reason": sorted({p.reason for p in pairs if p.reason}),
                "status": ["pending", "accept", "edit", "reject"],
            },
            "context_length": context_length,
        }

    @app.get("/api/pair/{index}")
    def pair_detail(index: str) -> dict[str, Any]:
        p = pair_at(index)
        return {
            "index": p.index, "tile_id": p.tile_id, "slide_id": p.slide_id, "x": p.x, "y": p.y,
            "size": p.size, "project": p.project, "reason": p.reason, "flags": p.flags,
            "caption": p.caption, "description": p.description, "revised": p.revised, "edits": p.edits,
            "caption_tokens": count_tokens(p.caption), **status_of(p, store.latest()),
        }  # fmt: skip

    @app.get("/image/patch/{index}.jpg")
    def patch_image(index: str) -> Response:
        p = pair_at(index)
        try:
            data, _ = images.get(p.record(), slides.get(p.slide_id))
        except Exception as exc:
            raise HTTPException(404, f"patch unreadable: {type(exc).__name__}") from exc
        if data is None:
            raise HTTPException(404, "no image for this pair")
        return Response(data, media_type="image/jpeg")

    @app.get("/image/context/{index}.jpg")
    def context_image(index: str) -> Response:
        p = pair_at(index)
        slide = slides.get(p.slide_id)
        try:
            data = context_jpeg(slide or {}, p.x, p.y, p.size)
        except Exception as exc:
            raise HTTPException(404, f"slide unreadable: {type(exc).__name__}") from exc
        return Response(data, media_type="image/jpeg")

    @app.get("/files/{path:path}")
    def run_file(path: str) -> Response:
        from fastapi.responses import FileResponse

        target = confined_file(run.root, path)
        if target is None:
            raise HTTPException(404, "not found")
        return FileResponse(target)

    @app.post("/api/decision")
    def decide(body: dict[str, Any]) -> dict[str, Any]:
        tile_id = str(body.get("tile_id") or "")
        if tile_id not in by_id:
            raise HTTPException(404, "no such pair")
        try:
            decision, caption, reviewer = check_decision(
                str(body.get("decision") or ""), body.get("caption"), str(body.get("reviewer") or "")
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        if caption is not None and count_tokens(caption) > context_length:
            raise HTTPException(
                422,
                f"the edited caption has {count_tokens(caption)} CLIP tokens; at most {context_length} fit",
            )
        d = store.add(tile_id, decision, reviewer, caption)
        return {"tile_id": tile_id, "status": d.decision, "reviewer": d.reviewer, "at": d.at}

    return app
