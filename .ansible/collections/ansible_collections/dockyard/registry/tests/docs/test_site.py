"""The rendered documentation site (make docs), checked in headless Chromium (make docs-test).

DOCS_SITE is the HTML directory make docs wrote, COLLECTION_DIR the installed collection it was
rendered from (what pages must exist follows from it: every module, every role, every
docs/*.md guide, every playbook). The browser crawls the site from index.html: every page
must load without a failed request or a JavaScript error, every internal link must reach a
page that exists, and every #fragment an element of that page.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from cdp import Browser, BrowserError, find_chromium

SITE = os.path.abspath(os.environ.get("DOCS_SITE", ""))
COLLECTION = os.path.abspath(os.environ.get("COLLECTION_DIR", ""))
FQCN = "dockyard.registry"

# What the browser reports about a page, in one round trip.
PAGE_FACTS = """(() => {
  const main = document.querySelector('[role="main"]') || document.body;
  return {
    title: document.title,
    h1: (main.querySelector('h1') || {}).textContent || '',
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    text: main.innerText,
  };
})()"""

EXAMPLES_FACTS = """(() => {
  const section = document.getElementById('examples');
  if (!section) return null;
  const pre = section.querySelector('pre');
  const box = pre ? pre.getBoundingClientRect() : null;
  return {code: pre ? pre.innerText : '', height: box ? box.height : 0,
          highlighted: section.querySelectorAll('pre span').length};
})()"""


def page_url(path: str) -> str:
    return "file://" + os.path.join(SITE, path)


@pytest.fixture(scope="module")
def crawl() -> dict[str, Any]:
    if not os.path.isfile(os.path.join(SITE, "index.html")):
        pytest.fail("DOCS_SITE=%r holds no index.html: run make docs first" % SITE)
    binary = find_chromium()
    if binary is None:
        pytest.fail("no Chromium found (chromium-headless-shell or chromium): hack/ensure-packages.sh installs it")
    browser = Browser(binary)
    started = time.monotonic()
    pages: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    links: list[tuple[str, str]] = []
    queue = ["index.html"]
    try:
        while queue:
            rel = queue.pop(0)
            if rel in pages:
                continue
            try:
                events = browser.load(page_url(rel))
            except BrowserError as exc:
                problems.append(str(exc))
                pages[rel] = {"ids": [], "links": [], "text": "", "h1": "", "title": ""}
                continue
            for event in events:
                method, params = event["method"], event.get("params", {})
                if method == "Network.loadingFailed":
                    problems.append("%s: a request failed: %s %s" % (rel, params.get("errorText"), params.get("requestId")))
                elif method == "Runtime.exceptionThrown":
                    problems.append("%s: JavaScript error: %s" % (rel, params["exceptionDetails"].get("text")))
                elif method == "Network.responseReceived":
                    url = params["response"]["url"]
                    if not url.startswith(("file:", "data:")):
                        problems.append("%s: loaded %s from the network (the site must work offline)" % (rel, url))
            facts = browser.evaluate(PAGE_FACTS)
            if rel.endswith("_module.html"):
                facts["examples"] = browser.evaluate(EXAMPLES_FACTS)
            pages[rel] = facts
            for href in facts["links"]:
                target = urldefrag(href)[0]
                if not target.startswith("file://"):
                    continue
                path = unquote(urlsplit(target).path)
                links.append((rel, href))
                if path.startswith(SITE + "/") and path.endswith(".html"):
                    queue.append(os.path.relpath(path, SITE))
    finally:
        browser.close()
    print("crawled %d pages, %d internal links in %.1f s" % (len(pages), len(links), time.monotonic() - started))
    return {"pages": pages, "problems": problems, "links": links}


def expected_pages() -> dict[str, str]:
    """Page -> why it must exist, from the collection's own files."""
    want = {"index.html": "the collection index", "playbooks.html": "the playbooks",
            "guides.html": "the list of scenario guides"}
    for name in os.listdir(os.path.join(COLLECTION, "plugins", "modules")):
        if name.endswith(".py") and not name.startswith("_"):
            want["%s_module.html" % name[:-3]] = "module " + name[:-3]
    for role in os.listdir(os.path.join(COLLECTION, "roles")):
        if os.path.isfile(os.path.join(COLLECTION, "roles", role, "meta", "argument_specs.yml")):
            want["%s_role.html" % role] = "role %s (argument spec)" % role
    for name in os.listdir(os.path.join(COLLECTION, "docs")):
        if name.endswith(".md"):
            want["guide_%s.html" % name[:-3]] = "guide docs/" + name
    return want


def test_every_page_loads_offline_without_errors(crawl: dict[str, Any]) -> None:
    assert crawl["problems"] == []


def test_every_expected_page_is_reachable_from_the_index(crawl: dict[str, Any]) -> None:
    missing = {page: why for page, why in expected_pages().items() if page not in crawl["pages"]}
    assert missing == {}


def test_internal_links_resolve(crawl: dict[str, Any]) -> None:
    broken = []
    for source, href in crawl["links"]:
        target, fragment = urldefrag(href)
        path = unquote(urlsplit(target).path)
        if not os.path.isfile(path):
            broken.append("%s -> %s: no such file" % (source, href))
            continue
        rel = os.path.relpath(path, SITE)
        if fragment and rel in crawl["pages"] and unquote(fragment) not in crawl["pages"][rel]["ids"]:
            broken.append("%s -> %s: no element with id %r" % (source, href, fragment))
    assert broken == []


def test_module_pages_show_their_examples(crawl: dict[str, Any]) -> None:
    modules = [p for p in expected_pages() if p.endswith("_module.html")]
    assert modules, "the collection has modules"
    for page in modules:
        name = page[: -len("_module.html")]
        examples = crawl["pages"][page]["examples"]
        assert examples is not None, "%s has no Examples section" % page
        assert "%s.%s:" % (FQCN, name) in examples["code"], "%s: the examples do not call %s.%s" % (page, FQCN, name)
        assert examples["height"] > 0, "%s: the examples are not displayed" % page
        assert examples["highlighted"] > 0, "%s: the examples are not highlighted" % page


def test_role_pages_show_their_argument_specs(crawl: dict[str, Any]) -> None:
    for page in (p for p in expected_pages() if p.endswith("_role.html")):
        role = page[: -len("_role.html")]
        text = crawl["pages"][page]["text"]
        assert "%s_state" % role in text or "%s_" % role in text, "%s lists no %s_* variable" % (page, role)


def test_guides_are_listed_with_their_titles(crawl: dict[str, Any]) -> None:
    index = crawl["pages"]["guides.html"]
    for name in sorted(os.listdir(os.path.join(COLLECTION, "docs"))):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(COLLECTION, "docs", name), encoding="utf-8") as f:
            # Markdown code spans in a title render as code: compare the text.
            title = next(line[2:].strip() for line in f if line.startswith("# ")).replace("`", "")
        assert title in index["text"], "the guide list lacks %r (docs/%s)" % (title, name)
        assert crawl["pages"]["guide_%s.html" % name[:-3]]["h1"].startswith(title)


def test_playbooks_page_shows_every_playbook(crawl: dict[str, Any]) -> None:
    text = crawl["pages"]["playbooks.html"]["text"]
    for name in os.listdir(os.path.join(COLLECTION, "playbooks")):
        if name.endswith(".yml"):
            assert "%s.%s" % (FQCN, name[:-4]) in text
            assert "playbooks/%s" % name in text


def test_search_finds_a_module() -> None:
    """The search page runs its JavaScript over the local index (and so proves JS works offline)."""
    browser = Browser(find_chromium() or "chromium")
    try:
        browser.load(page_url("search.html") + "?q=htpasswd")
        deadline = time.monotonic() + 20
        found: list[str] = []
        while time.monotonic() < deadline and not found:
            found = browser.evaluate(
                "Array.from(document.querySelectorAll('#search-results a')).map(a => a.getAttribute('href'))")
            if not found:
                time.sleep(0.2)
    finally:
        browser.close()
    assert any(href.startswith("htpasswd_user_module.html") for href in found), found
