"""The documentation stands on its own: every link in it leads to a file of the repository, and it explains
things instead of pointing at tracker numbers a reader of the repository cannot see."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "DEPLOY.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and [text](target "title"); images too.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# "issue 7", "issue #7", "proof 2", "proofs 1-4"
TRACKER_REFERENCE = re.compile(r"\b(?:issues?|proofs?)\s+#?\d", re.IGNORECASE)


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]


def test_links_stay_inside_the_repository_and_lead_to_files() -> None:
    assert (ROOT / "docs" / "DESIGN.md").is_file()
    assert "docs/DESIGN.md" in relative_links((ROOT / "README.md").read_text())
    for doc in DOCS:
        for target in relative_links(doc.read_text()):
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name}: {target} is outside the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"


def test_docs_and_test_docstrings_cite_no_issue_numbers() -> None:
    tests = [path for path in (ROOT / "tests").rglob("*.py") if "artifacts" not in path.parts]
    for path in [*DOCS, *tests]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if path != Path(__file__):
                assert not TRACKER_REFERENCE.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
