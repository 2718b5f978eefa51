"""The repository's documents stand on their own: every relative link and image resolves to a
file inside the repository, and user-facing pages carry no internal notes (issue numbers, diary
times of day, ownership remarks)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "model_repository/ARCHITECTURE.md", "packaging/k8s/README.md", "client/README.md",
        "export/README_gpu.md", "benchmarks/RESULTS.md"]
# Pages a user reads first: no internal notes at all.
USER_PAGES = ["README.md", "model_repository/ARCHITECTURE.md", "packaging/k8s/README.md", "benchmarks/RESULTS.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INTERNAL = re.compile(r"\bissues? #?\d+|\bmorning\b|\bafternoon\b|\bnot mine\b|\bthis session\b|/work/", re.IGNORECASE)


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+://|#|mailto:", t)]


@pytest.mark.parametrize("name", DOCS)
def test_links_resolve_inside_the_repository(name):
    page = ROOT / name
    for target in relative_links(page):
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{name} links outside the repository: {target}"
        assert path.exists(), f"{name} links to a missing file: {target}"


def test_readme_links_the_architecture_and_shows_a_picture_per_task():
    from training.contract import TASKS

    links = relative_links(ROOT / "README.md")
    assert "model_repository/ARCHITECTURE.md" in links
    for task in TASKS:
        assert f"benchmarks/pictures/{task}.png" in links, f"README shows no picture of {task}"


@pytest.mark.parametrize("name", USER_PAGES)
def test_no_internal_notes(name):
    for number, line in enumerate((ROOT / name).read_text().splitlines(), 1):
        found = INTERNAL.search(line)
        assert not found, f"{name}:{number}: internal note {found.group(0)!r}: {line.strip()}"
