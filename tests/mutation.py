"""Mutation testing of the pure-logic modules with mutmut, cached by module hash.

    .venv/bin/python tests/mutation.py            re-mutate the modules whose key changed, then check the target
    .venv/bin/python tests/mutation.py --all      re-mutate every module
    .venv/bin/python tests/mutation.py --check    only check the committed results (no mutmut run)
    .venv/bin/python tests/mutation.py MODULE...  re-mutate these modules (paths as in MODULES)

Each module is mutated against its fast tests only (``MODULES``: files that load no model, so a mutant costs
a fraction of a second). A module's key is the sha256 of the module, its test files and the test modules they
import, conftest.py, pytest.ini, this script and the mutmut version; ``tests/mutation_results.json`` holds the
last result per key, committed, so CI re-mutates only what changed. The run happens in a scratch copy of the
packages (mutmut writes a ``mutants/`` folder and a ``setup.cfg`` where it runs; neither belongs in the working
tree). Exit status 1 when a module kills less than ``TARGET`` of its mutants. docs/testing.md explains every
surviving mutant.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "tests" / "mutation_results.json"
TARGET = 0.90
PACKAGES = ("facecore", "age", "gender", "emotion", "faceanalysis", "training")

# Module -> the fast test files that are run against its mutants.
MODULES = {
    "faceanalysis/pipeline/aggregate.py": ("tests/test_aggregate.py",),
    "faceanalysis/pipeline/tracking.py": ("tests/test_tracking.py", "tests/test_tracking_rules.py"),
    "age/distribution.py": ("tests/test_age_interval.py",),
    "facecore/frames.py": ("tests/test_frames.py",),
    "faceanalysis/service/inputs.py": ("tests/test_inputs.py", "tests/test_service_rules.py"),
    "faceanalysis/service/legacy.py": ("tests/test_formats.py", "tests/test_service_rules.py"),
    "faceanalysis/service/report.py": ("tests/test_formats.py",),
    "training/metrics.py": ("tests/test_metrics.py",),
    "training/tracking_metrics.py": ("tests/test_tracking_metrics.py",),
}
# Outcomes that count as the tests noticing the mutant.
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}


def test_files_read(tests: tuple[str, ...]) -> list[str]:
    """``tests`` and the test modules they import (``from test_x import ...``), recursively."""
    found, todo = [], list(tests)
    while todo:
        path = todo.pop(0)
        if path in found:
            continue
        found.append(path)
        tree = ast.parse((REPO / path).read_text())
        todo += [f"tests/{node.module}.py" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module and (REPO / "tests" / f"{node.module}.py").exists()]
    return found


def module_key(module: str) -> str:
    digest = hashlib.sha256(f"mutmut {version('mutmut')}\n".encode())
    for path in (module, *test_files_read(MODULES[module]), "tests/conftest.py", "tests/mutation.py", "pytest.ini"):
        file = REPO / path
        digest.update(f"{path}\n".encode())
        digest.update(file.read_bytes() if file.exists() else b"(missing)")
    return digest.hexdigest()


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict) -> None:
    ordered = {module: results[module] for module in MODULES if module in results}
    RESULTS.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")


def scratch_tree(modules: list[str]) -> Path:
    """A copy of the packages, conftest, the modules' test files and a mutmut configuration."""
    root = Path(tempfile.mkdtemp(prefix="mutation-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "static")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    tests = sorted({test for module in modules for test in MODULES[module]})
    (root / "tests").mkdir()
    for path in {*test_files_read(tuple(tests)), "tests/conftest.py"}:
        shutil.copy2(REPO / path, root / path)
    shutil.copy2(REPO / "pytest.ini", root / "pytest.ini")
    lines = ["[mutmut]", "source_paths=", *(f"    {package}" for package in PACKAGES if package in
                                             {module.split("/")[0] for module in modules}),
             "only_mutate=", *(f"    {module}" for module in modules),
             "pytest_add_cli_args_test_selection=", *(f"    {test}" for test in tests),
             # Random order would only add noise to the timings mutmut uses for its timeouts.
             "pytest_add_cli_args=", "    -p", "    no:randomly",
             "use_git_change_detection=false"]
    (root / "setup.cfg").write_text("\n".join(lines) + "\n")
    return root


def mutate(modules: list[str], workers: int) -> dict:
    """Run mutmut over ``modules``; the result of each, keyed by module."""
    root = scratch_tree(modules)
    mutmut = [sys.executable, "-m", "mutmut"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run([*mutmut, "run", "--max-children", str(workers)], cwd=root, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mutmut run failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=root, env=env, capture_output=True,
                                 text=True, check=True).stdout
        seconds = time.monotonic() - started
        statuses = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", listing, re.M))
        out = {}
        for module in modules:
            prefix = module[:-3].replace("/", ".") + "."
            mine = {name: status for name, status in statuses.items() if name.startswith(prefix)}
            survivors = sorted(name for name, status in mine.items() if status not in DETECTED)
            diffs = {}
            for name in survivors:
                shown = subprocess.run([*mutmut, "show", name], cwd=root, env=env, capture_output=True, text=True)
                diffs[name] = {"status": mine[name], "diff": "\n".join(shown.stdout.strip().splitlines()[3:])}
            killed = len(mine) - len(survivors)
            out[module] = {"key": module_key(module), "mutants": len(mine), "killed": killed,
                           "rate": round(killed / len(mine), 4) if mine else 1.0,
                           "seconds_for_run": round(seconds, 1), "survivors": diffs}
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(results: dict) -> bool:
    ok = True
    print(f"{'module':42} {'mutants':>7} {'killed':>6} {'rate':>6}")
    for module in MODULES:
        entry = results.get(module)
        if entry is None:
            print(f"{module:42} not mutated yet")
            ok = False
            continue
        below = entry["rate"] < TARGET
        ok &= not below
        print(f"{module:42} {entry['mutants']:7d} {entry['killed']:6d} {entry['rate']:6.1%}"
              f"{'  BELOW TARGET' if below else ''}")
    documented = (REPO / "docs" / "testing.md").read_text() if (REPO / "docs" / "testing.md").exists() else ""
    missing = [name for entry in results.values() for name in entry["survivors"] if name not in documented]
    for name in missing:
        print(f"warning: survivor {name} is not explained in docs/testing.md")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="re-mutate these modules whatever their key")
    parser.add_argument("--all", action="store_true", help="re-mutate every module")
    parser.add_argument("--check", action="store_true", help="check the committed results only; fail when stale")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    unknown = [module for module in args.modules if module not in MODULES]
    if unknown:
        parser.error(f"not in MODULES: {', '.join(unknown)}")
    results = load_results()
    stale = [module for module in MODULES if results.get(module, {}).get("key") != module_key(module)]
    if args.check:
        for module in stale:
            print(f"stale: {module} changed since its last mutation run")
        return 0 if report(results) and not stale else 1
    todo = list(MODULES) if args.all else (args.modules or stale)
    if todo:
        print(f"mutating {len(todo)} module(s): {', '.join(todo)}", flush=True)
        results.update(mutate(todo, args.workers))
        save_results(results)
    else:
        print("every module's result is up to date (tests/mutation_results.json)")
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
