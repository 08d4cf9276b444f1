"""The API's docs pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with nothing from a CDN.

Their scripts and stylesheet are the files the pinned `fastapi-offline` package
ships (served under `/docs/static`), and Swagger UI starts from a file of ours
(`static/swagger-init.js`), never an inline script: both pages work with no
internet, and their Content-Security-Policy (`guards.DOCS_POLICY`) allows this
origin only (it refuses ReDoc's "API docs by Redocly" logo, which ReDoc always
asks its CDN for and hides when it does not load).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

PAGES = ("/docs", "/redoc")
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
INIT = Path(__file__).resolve().parent / "static" / "swagger-init.js"

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{root}/docs/static/swagger-ui.css">
<link rel="icon" href="{root}/docs/static/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{root}/docs/static/swagger-ui-bundle.js"></script>
<script src="{root}/docs/swagger-init.js"></script>
</body>
</html>
"""


def docs_routes(app: FastAPI) -> None:
    """Serve `/docs` and `/redoc` for `app` (built with `docs_url=None, redoc_url=None`)."""
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = escape(request.scope.get("root_path", ""))
        return HTMLResponse(_SWAGGER.format(title=escape(app.title), root=root,
                                            openapi=f"{root}{escape(openapi)}"))

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    async def swagger_init() -> FileResponse:
        return FileResponse(INIT, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{openapi}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}/docs/static/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/docs/static/favicon.png",
                              with_google_fonts=False)

    app.mount("/docs/static", StaticFiles(directory=str(ASSETS)), name="docs-static")
