"""Tests that the tutorial's text can be followed: every link in the README and docs/ resolves inside the
repository, every test the faithfulness notes name exists, nothing points to a file outside the
repository, and the six chapters keep their reading budgets (bench/budgets.py).

    python -m pytest tests/test_docs.py
"""
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "RESULTS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def load_budgets():
    spec = importlib.util.spec_from_file_location("budgets", REPO / "bench" / "budgets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_relative_link_resolves():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, f"{len(broken)} links point nowhere, first: {broken[:5]}"


def test_every_named_test_exists():
    defined = set()
    for path in (REPO / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    missing = []
    for doc in DOCS:
        for name in re.findall(r"`(test_\w+)`", doc.read_text()):
            if name not in defined and not any(d.startswith(name.rstrip("_*")) for d in defined):
                missing.append(f"{doc.relative_to(REPO)}: {name}")
    assert not missing, f"{len(missing)} named tests do not exist, first: {missing[:5]}"


def test_nothing_points_outside_the_repository():
    hits = load_budgets().forbidden_mentions()
    assert not hits, f"{len(hits)} pointers outside the repository or to project history, first: {hits[:3]}"


def test_chapters_keep_their_reading_budgets():
    """Main paths, options and line lengths within budget; the six files' total below its ceiling."""
    budgets = load_budgets()
    rows, ok, total = budgets.report()
    assert ok, "\n".join(rows)
    assert total <= budgets.TOTAL_CEILING, f"the six files grew to {total:,} lines (ceiling {budgets.TOTAL_CEILING:,})"


def test_readme_reading_order_states_the_measured_main_paths():
    """The README's reading-order table gives each chapter's main-path length as bench/budgets.py counts it."""
    budgets = load_budgets()
    stated = dict(re.findall(r"^\| \[(\w+\.py)\]\(\w+\.py\) \| (\d+) \|", (REPO / "README.md").read_text(), re.M))
    assert set(stated) == set(budgets.BUDGETS), f"README's reading order lists {sorted(stated)}"
    measured = {name: budgets.main_path_lines((REPO / name).read_text().splitlines()) for name in budgets.BUDGETS}
    wrong = {name: (int(n), measured[name]) for name, n in stated.items() if int(n) != measured[name]}
    assert not wrong, f"README main-path lines (stated, measured): {wrong}"
