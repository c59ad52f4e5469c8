"""The service's HTML pages: the templates' set-up and what every page answers with.

Pages are Litestar's Jinja templates, kept in `rewards/pages/templates/` (inside the package,
so an installed wheel has them). Every page extends `base.html`, which inlines the one
stylesheet, `page.css`: no external assets, no JavaScript. Autoescaping is on for every
template and undefined variables are errors, so what a person typed is always shown escaped
and a misspelt name fails a test instead of rendering blank.

`page()` answers with the headers every page needs: `Cache-Control: no-store` (pages show
personal data, and their URLs may carry a token), a Content-Security-Policy that allows no
script at all, no external resource, and inline CSS only if it is exactly `page.css` (its
SHA-256 is in the policy, so styles go in that file, not in `style` attributes), form posts
to this origin only, and no framing.

A handler marked `**PAGE` shows its errors as a page to a browser (which asks for
`text/html`) and as problem+json to everything else (`rewards.app.on_domain_error`).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from markupsafe import Markup

from rewards import errors

TEMPLATES = Path(__file__).parent / "templates"
PAGE_CSS = (TEMPLATES / "page.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(PAGE_CSS.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    # the token in a page's URL goes to no other site
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}

PAGE: dict[str, Any] = {"opt": {"page": True}}
"""Handler keywords of a page: its errors are shown as pages to browsers."""


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's templates: this package's folder, autoescaped, strict about undefined names."""
    environment = Environment(
        loader=PackageLoader("rewards.pages", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["page_css"] = Markup(PAGE_CSS)  # our own file, inlined byte for byte (see the CSP hash)
    environment.filters["sentence"] = sentence
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def page(template: str, context: dict[str, Any], *, status: int = 200) -> Template:
    """A page, with the headers every page answers with."""
    return Template(template_name=template, context=context, status_code=status, headers=HEADERS,
                    media_type="text/html")


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """Whether an error of this request is best shown as a page: a page's handler, asked by a
    browser (it prefers text/html); other clients get problem+json."""
    handler = request.scope.get("route_handler")
    if handler is None or not handler.opt.get("page"):
        return False
    return request.accept.best_match(["application/problem+json", "application/json", "text/html"]) == "text/html"


def error_page(exc: errors.DomainError, path: str = "") -> Template:
    """A domain error as a page, with its status and code; `path`, the page asked for, picks its look."""
    return page("error.html", {"status": exc.status, "code": exc.code, "title": exc.title, "detail": exc.detail,
                               "path": path}, status=exc.status)


def sentence(text: str) -> str:
    """An error's detail (written in lower case, as problem+json has it) as a sentence on a page."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def from_this_site(request: Request[Any, Any, Any], public_url: str) -> bool:
    """Whether a browser says a form post comes from our own pages.

    Fetch Metadata (`Sec-Fetch-Site`, sent by every current browser) decides; without it the
    `Origin` header, when present, must be our public origin. A client that sends neither is
    not a browser posting across sites, which is what this guards against.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    public = urlsplit(public_url)
    return origin == f"{public.scheme}://{public.netloc}"
