"""The reading budgets of the six chapters: main-path lines, whole length, options, long lines.

The main path of a file is every line before its first line starting with "# Appendix" (the banner
of the engineering a student can skip). Options are the `add_argument` calls inside each parser
function (finetune.py's training and predict commands are counted apart).

    python bench/budgets.py            # prints the table; exit status 1 if a budget is exceeded
"""
import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# file: (main-path budget, option budget or None)
BUDGETS = {
    "tokenizer.py": (400, None),
    "electramed.py": (450, None),
    "data.py": (600, None),
    "train_pretrain.py": (550, 28),
    "finetune.py": (750, 30),
    "eval.py": (300, None),
}
TOTAL_BUDGET = 4600
# The six files are above the total budget (every remaining line has a caller and a feature behind it);
# the tests hold this ceiling so that they can only shrink.
TOTAL_CEILING = 5150
MAX_LINE = 120
# What a reader of the repository cannot follow, or what is project history rather than method.
FORBIDDEN = r"PAPER\.md|STYLE|issue [0-9]"


def main_path_lines(lines: list[str]) -> int:
    """Lines before the first '# Appendix' banner line (the whole file when it has none)."""
    for i, line in enumerate(lines):
        if line.startswith("# Appendix"):
            return i
    return len(lines)


def options_per_parser(source: str) -> dict[str, int]:
    """{function name: add_argument calls inside it} for every function that adds arguments."""
    counts = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            calls = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                     and c.func.attr == "add_argument"]
            if calls:
                counts[node.name] = len(calls)
    return counts


def training_options(name: str, parsers: dict[str, int]) -> int:
    """The options of a file's main command: all parsers but finetune's predict command."""
    return sum(n for fn, n in parsers.items() if not (name == "finetune.py" and "predict" in fn))


def forbidden_mentions() -> list[str]:
    """git grep hits of FORBIDDEN in *.py and README.md."""
    run = subprocess.run(["git", "grep", "-nE", FORBIDDEN, "--", "*.py", "README.md"], cwd=REPO,
                         capture_output=True, text=True)
    own = ("bench/budgets.py", "tests/test_docs.py")      # the pattern itself, and the test that uses it
    return [line for line in run.stdout.splitlines() if not line.startswith(own)]


def report() -> tuple[list[str], bool, int]:
    """The table's lines, whether every per-file budget holds, and the six files' total length."""
    rows = [f"{'file':<18} {'main':>10} {'total':>6} {'options':>10} {'>120 chars':>10}"]
    ok, total = True, 0
    for name, (main_budget, option_budget) in BUDGETS.items():
        source = (REPO / name).read_text()
        lines = source.splitlines()
        main, parsers = main_path_lines(lines), options_per_parser(source)
        options = training_options(name, parsers)
        long_lines = sum(len(line) > MAX_LINE for line in lines)
        total += len(lines)
        ok &= main <= main_budget and (option_budget is None or options <= option_budget) and not long_lines
        shown = f"{options}/{option_budget}" if option_budget else str(options)
        rows.append(f"{name:<18} {main:>5}/{main_budget:<4} {len(lines):>6} {shown:>10} {long_lines:>10}")
    rows.append(f"{'six files':<18} {'':>10} {total:>6} (budget {TOTAL_BUDGET:,})")
    hits = forbidden_mentions()
    ok &= not hits
    rows.append(f"mentions of {FORBIDDEN!r} in *.py and README.md: {len(hits)}")
    rows += [f"  {hit[:110]}" for hit in hits[:20]]
    return rows, ok, total


def main():
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    rows, ok, total = report()
    print("\n".join(rows))
    print("every per-file budget holds" if ok else "a per-file budget is exceeded")
    print(f"the six files' total: {total:,} lines, {'within' if total <= TOTAL_BUDGET else 'over'} "
          f"the {TOTAL_BUDGET:,} budget")
    sys.exit(0 if ok and total <= TOTAL_BUDGET else 1)


if __name__ == "__main__":
    main()
