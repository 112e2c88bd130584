#!/usr/bin/env python
"""Render the collection's documentation site (make docs), offline.

From the installed collection (the tarball's contents, not the loose checkout):
- antsibull-docs writes the RST of every module and of every role's argument spec;
- every docs/*.md becomes a page (guide_<name>) under "Scenario guides", listed on the index by its first
  heading, so a guide that lands later needs no change here;
- the README and the roles' READMEs become pages; links between these Markdown files are
  rewritten to the pages they became, links to files the site does not carry become the path;
- each playbooks/*.yml gets a section of one page: its header comment and its source;
then Sphinx (sphinx-ansible-theme, MyST for Markdown) renders HTML with warnings as errors.

Usage: build_docs.py COLLECTION_DIR OUTPUT_DIR   (HTML in OUTPUT_DIR/html)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

NAMESPACE = "dockyard"
NAME = "registry"

# Sphinx configuration. Offline: no intersphinx inventories are fetched; references that the
# plugin docs make to docs.ansible.com labels (other collections' plugins, Ansible's own
# pages) become plain external links there (missing-reference handler below).
CONF_PY = '''
from __future__ import annotations

project = "dockyard.registry"
copyright = "dockyard.registry developers"
title = "dockyard.registry"
html_short_title = "dockyard.registry"
extensions = ["sphinx_antsibull_ext", "myst_parser"]
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
# Every page sits at the top of the site (no subdirectories): the theme's home link is relative.
html_theme_options = {"topbar_links": {}, "documentation_home_url": "index.html"}
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
default_role = "any"
nitpicky = True
myst_heading_anchors = 4
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# Console transcripts in the guides are no valid YAML or Python: Pygments then highlights them
# leniently, which is what a reader wants, not an error.
suppress_warnings = ["misc.highlighting_failure"]

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/latest/"
KNOWN_LABELS = {
    "ansible_configuration_settings": "reference_appendices/config.html",
    "common_return_values": "reference_appendices/common_return_values.html",
}


def _external_reference(app, env, node, contnode):
    from docutils import nodes

    target = node.get("reftarget", "")
    url = None
    if target in KNOWN_LABELS:
        url = ANSIBLE_DOCS + KNOWN_LABELS[target]
    else:
        parts = target.split(".")
        if len(parts) == 4 and parts[0] == "ansible_collections" and parts[1:3] != ["dockyard", "registry"]:
            url = ANSIBLE_DOCS + "collections/%s/%s/%s.html" % (parts[1], parts[2], parts[3])
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url)
    ref.append(contnode)
    return ref


def setup(app):
    app.connect("missing-reference", _external_reference)
'''

ANTSIBULL_CFG = '''
breadcrumbs = true
indexes = true
use_html_blobs = false
add_antsibull_docs_version = false
collection_url = {
    * = "index.html"
}
collection_install = {
    * = "ansible-galaxy collection install {namespace}-{name}-<version>.tar.gz  (the tarball make build writes)"
}
'''

LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def run(cmd: list[str], cwd: str | None = None) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def first_heading(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# "):
                return line[2:].strip()
    raise SystemExit("error: %s has no '# Title' line: every guide starts with one" % path)


class Pages:
    """Where each Markdown file of the collection lands in the site (paths relative to src/)."""

    def __init__(self, coll: str) -> None:
        self.coll = coll
        self.pages: dict[str, str] = {"README.md": "overview.md"}
        self.guides = sorted(
            n for n in os.listdir(os.path.join(coll, "docs")) if n.endswith(".md")
        ) if os.path.isdir(os.path.join(coll, "docs")) else []
        for name in self.guides:
            self.pages["docs/" + name] = "guide_" + name
        roles_dir = os.path.join(coll, "roles")
        self.roles = sorted(
            r for r in os.listdir(roles_dir) if os.path.isfile(os.path.join(roles_dir, r, "README.md"))
        ) if os.path.isdir(roles_dir) else []
        for role in self.roles:
            self.pages["roles/%s/README.md" % role] = "%s_role_readme.md" % role

    def rewrite(self, source: str, text: str) -> str:
        """Rewrite the links of the collection file ``source`` for its page in the site."""
        page_dir = os.path.dirname(self.pages[source])
        src_dir = os.path.dirname(source)

        def fix(match: re.Match) -> str:
            bang, label, target = match.groups()
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                return match.group(0)
            path, anchor = (target.split("#", 1) + [""])[:2]
            resolved = os.path.normpath(os.path.join(src_dir, path))
            if resolved in self.pages:
                new = os.path.relpath(self.pages[resolved], page_dir or ".")
                return "%s[%s](%s%s)" % (bang, label, new, "#" + anchor if anchor else "")
            # A file of the collection that is no page of the site: name it, do not link it.
            return "%s (`%s` in the collection)" % (label, resolved)

        return LINK.sub(fix, text)

    def write(self, src: str) -> None:
        for source, page in self.pages.items():
            with open(os.path.join(self.coll, source), encoding="utf-8") as f:
                text = f.read()
            dest = os.path.join(src, page)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w", encoding="utf-8") as f:
                f.write(self.rewrite(source, text))


def playbooks_page(coll: str) -> str:
    out = ["Playbooks", "=========", "",
           "Run them by name from the installed collection, e.g. "
           "``ansible-playbook -i inventory.yml %s.%s.deploy_registry``." % (NAMESPACE, NAME), ""]
    pb_dir = os.path.join(coll, "playbooks")
    for name in sorted(os.listdir(pb_dir)):
        if not name.endswith((".yml", ".yaml")):
            continue
        with open(os.path.join(pb_dir, name), encoding="utf-8") as f:
            source = f.read()
        header = []
        for line in source.splitlines():
            if line.strip() == "---":
                continue
            if not line.startswith("#"):
                break
            header.append(line[2:] if line.startswith("# ") else line[1:])
        title = "%s.%s.%s" % (NAMESPACE, NAME, os.path.splitext(name)[0])
        out += [".. _playbook_%s:" % os.path.splitext(name)[0], "", title, "-" * len(title), ""]
        if header:
            out += [".. code-block:: text", ""] + ["  " + h if h else "" for h in header] + [""]
        out += ["Source, ``playbooks/%s``:" % name, "", ".. code-block:: yaml+jinja", ""]
        out += ["  " + line if line else "" for line in source.splitlines()] + [""]
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    coll, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if not os.path.isfile(os.path.join(coll, "galaxy.yml")) and not os.path.isfile(os.path.join(coll, "MANIFEST.json")):
        print("error: %s is not a collection (no galaxy.yml or MANIFEST.json)" % coll, file=sys.stderr)
        return 2
    src, html = os.path.join(out, "src"), os.path.join(out, "html")
    for d in (src, html, os.path.join(out, "doctrees")):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(src, mode=0o755)
    cfg = os.path.join(out, "antsibull-docs.cfg")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(ANTSIBULL_CFG)

    run(["antsibull-docs", "--config-file", cfg, "collection", "--use-current", "--squash-hierarchy",
         "--fail-on-error", "--cleanup", "everything", "--dest-dir", src, "%s.%s" % (NAMESPACE, NAME)])
    with open(os.path.join(src, "conf.py"), "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(CONF_PY).lstrip())

    pages = Pages(coll)
    pages.write(src)
    with open(os.path.join(src, "playbooks.rst"), "w", encoding="utf-8") as f:
        f.write(playbooks_page(coll))

    guides = ["Guides", "======", "",
              "Every page of the collection's ``docs/`` directory: scenario guides, each with the commands a user "
              "types and what they printed, copied from a real run; and notes on the collection's internals.", ""]
    for name in pages.guides:
        guides.append("- :doc:`guide_%s`" % os.path.splitext(name)[0])
    guides += ["", ".. toctree::", "   :hidden:", ""] + ["   guide_" + os.path.splitext(n)[0] for n in pages.guides]
    with open(os.path.join(src, "guides.rst") if pages.guides else os.devnull, "w", encoding="utf-8") as f:
        f.write("\n".join(guides) + "\n")

    # The collection index antsibull-docs wrote, with the pages it does not know about.
    extra = ["", "Guides and overview", "-------------------", "", ".. toctree::", "   :maxdepth: 1", "",
             "   overview"]
    if pages.guides:
        extra.append("   guides")
    extra += ["   playbooks"] + ["   %s_role_readme" % r for r in pages.roles] + [""]
    with open(os.path.join(src, "index.rst"), "a", encoding="utf-8") as f:
        f.write("\n".join(extra))

    run(["sphinx-build", "-b", "html", "-W", "--keep-going", "-q", "-d", os.path.join(out, "doctrees"),
         src, html])
    print("==> site: %s" % os.path.join(html, "index.html"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
