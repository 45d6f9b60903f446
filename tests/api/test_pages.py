"""The pages a browser opens (`/` and the API docs under /schema) work with no internet:
everything they load comes from this server."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
CSS_REFERENCES = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


class References(HTMLParser):
    """Every URL a page names: what it loads (src, href of a <link>, CSS url()/@import,
    inline style included) and where its anchors lead."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, found in attrs:
            if found and tag == "a" and name == "href":
                self.links.append(found)
            elif found and name in {"src", "href"}:
                self.urls.append(found)
            elif found and name == "style":
                self.urls += css_references(found)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += css_references(data)


def css_references(css: str) -> list[str]:
    return [a or b for a, b in CSS_REFERENCES.findall(css) if not (a or b).startswith("data:")]


def html_pages(app: Litestar) -> list[str]:
    """Every page without path parameters at `/` or under /schema, whatever renders it."""
    return sorted(
        {
            route.path
            for route in app.routes
            if isinstance(route, HTTPRoute)
            and (route.path == "/" or route.path.startswith("/schema"))
            and not route.path_parameters
            and "GET" in route.methods
        }
    )


async def test_every_page_loads_only_from_this_server(app: Litestar, client: Client) -> None:
    origin = urlsplit(str(client.base_url)).netloc
    pages = [p for p in html_pages(app) if p != "/schema/openapi.json"]
    checked: dict[str, list[str]] = {}

    for page in pages:
        answer = await client.get(page)
        assert answer.status_code == 200, page
        if not answer.headers["content-type"].startswith("text/html"):
            continue
        parser = References()
        parser.feed(answer.text)
        checked[page] = parser.urls
        for reference in parser.urls + parser.links:
            url = urljoin(f"http://{origin}{page}", reference)
            assert urlsplit(url).netloc == origin, f"{page} names {reference} on another host"
        for reference in parser.urls:
            await assert_served(client, urljoin(f"http://{origin}{page}", reference), origin)

    assert {"/", "/schema", "/schema/swagger"} <= set(checked)
    assert any(u.endswith(".js") for u in checked["/schema"]), checked["/schema"]


async def assert_served(client: Client, url: str, origin: str) -> None:
    """The asset answers, and a stylesheet's own fonts and images come from here too."""
    path = urlsplit(url).path
    answer = await client.get(path)
    assert answer.status_code == 200, f"{path} answers {answer.status_code}"
    if answer.headers["content-type"].startswith("text/css"):
        for reference in css_references(answer.text):
            inner = urljoin(url, reference)
            assert urlsplit(inner).netloc == origin, f"{path} loads {reference} from elsewhere"
            await assert_served(client, inner, origin)


async def test_the_root_page_says_what_this_is_and_links_the_way_in(client: Client) -> None:
    answer = await client.get("/")
    parser = References()
    parser.feed(answer.text)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>Community Ledger</h1>" in answer.text
    assert "event-sourced record" in answer.text
    assert {"/schema", "/schema/openapi.json", "/health", "/v1/projections"} <= set(parser.links)
    assert "read</code> scope" in answer.text
    for link in parser.links:
        status = (await client.get(link)).status_code
        assert status == (401 if link.startswith("/v1/") else 200), link


async def test_the_root_page_is_not_an_api_operation(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()

    assert "/" not in document["paths"]
    assert not any(path.startswith("/schema") for path in document["paths"])
