"""The README and docs lead somewhere: every relative link names a file that exists, and every #anchor a heading
of that file (as GitHub makes anchors from headings)."""

import re

from conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {anchor(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def broken_links(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (fragment and fragment not in anchors(linked)):
            broken.append(target)
    return broken


def test_every_link_of_the_readme_and_docs_leads_somewhere():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert {str(page.relative_to(ROOT)): broken_links(page) for page in pages if broken_links(page)} == {}


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section (measured)\n")
    page = tmp_path / "page.md"
    page.write_text("[fine](other.md#a-section-measured) [gone](missing.md) [no such part](other.md#nowhere) "
                    "[web](https://example.org)")
    assert broken_links(page) == ["missing.md", "other.md#nowhere"]
