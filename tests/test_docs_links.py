"""Every relative link in README.md and docs/ resolves: the file exists and, for #anchors, the
heading does (GitHub's anchor rule: lowercase, punctuation dropped, spaces to hyphens)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    out, seen = set(), {}
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links inside code blocks are not links
    for target in LINK.findall(text):
        if not re.match(r"^[a-z]+:", target):
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    bad = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            bad.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} is missing")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
        if dest.exists() and not dest.is_relative_to(ROOT):
            bad.append(f"{target}: points outside the repository")
    assert not bad, "\n".join(bad)


def test_the_pages_have_links_to_check():
    assert sum(len(list(links(p))) for p in PAGES) > 20


def test_the_kflow_names_the_docs_cite_exist():
    """`kflow.a.b` or `kflow.a.b.name` in a page is a module, or a name in one."""
    import importlib

    missing = []
    for page in PAGES:
        for name in sorted(set(re.findall(r"`(kflow(?:\.[A-Za-z_]\w*)+)", page.read_text()))):
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                for attr in parts[cut:]:
                    obj = getattr(obj, attr, None)
                if obj is None:
                    missing.append(f"{page.name}: {name}")
                break
    assert not missing, "\n".join(missing)
