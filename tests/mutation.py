"""Mutation testing of the pure-logic modules with mutmut, cached by module hash (docs/testing.md).

    .venv/bin/python tests/mutation.py               re-mutate the modules whose key changed, then check the target
    .venv/bin/python tests/mutation.py --all         re-mutate every module
    .venv/bin/python tests/mutation.py MODULE ...    re-mutate these modules (paths as in MODULES)
    .venv/bin/python tests/mutation.py --check       check the committed results only; fail when one is stale
    .venv/bin/python tests/mutation.py --survivors   print each survivor not yet explained, with its diff

Each module is mutated against its fast tests only (``MODULES``: files that load no model, so a mutant costs
a fraction of a second). A module's key is the sha256 of the module, its test files, the test modules they
import and the mutmut version; ``tests/mutation_results.json`` holds the last result per key, committed, so CI
re-mutates only what changed. mutmut runs in a scratch copy of the packages: it writes a ``mutants/`` folder
and reads a ``setup.cfg`` where it runs, and neither belongs in the working tree.

A survivor is *equivalent* when docs/testing.md lists it in a row ``| `NAME` | `FINGERPRINT` | ... |``, the
fingerprint being that of its diff (so a renumbered or changed mutant is not excused by an old row). A module's
score is killed / (mutants - equivalent); the run fails when a score is under ``TARGET``.
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
DOCS = REPO / "docs" / "testing.md"
TARGET = 0.90
PACKAGES = ("facecore", "age", "gender", "emotion", "faceanalysis", "training")

# Module -> the fast test files run against its mutants (all in tests/unit/, the `pure` selection).
MODULES = {
    "faceanalysis/pipeline/aggregate.py": ("tests/unit/test_aggregate.py",),
    "faceanalysis/pipeline/tracking.py": ("tests/unit/test_tracking.py", "tests/unit/test_person_rules.py"),
    "faceanalysis/pipeline/persons.py": ("tests/unit/test_person_rules.py",),
    "age/distribution.py": ("tests/unit/test_age_interval.py", "tests/unit/test_lifespan.py"),
    "facecore/frames.py": ("tests/unit/test_frames.py",),
    "faceanalysis/service/analysis_request.py": ("tests/unit/test_inputs.py", "tests/unit/test_hostile_rules.py"),
    "faceanalysis/writers/legacy.py": ("tests/unit/test_formats.py",),
    "faceanalysis/writers/v2.py": ("tests/unit/test_formats.py",),
    "faceanalysis/writers/table.py": ("tests/unit/test_writers.py",),
    "training/metrics.py": ("tests/unit/test_metrics.py", "tests/unit/test_lifespan_metrics.py"),
    "training/tracking_metrics.py": ("tests/unit/test_tracking_metrics.py",),
}
# Outcomes that count as the tests noticing the mutant (a timeout is a mutant that made them loop).
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}
EQUIVALENT_ROW = re.compile(r"^\|\s*`(?P<name>[^`]+__mutmut_\d+)`\s*\|\s*`(?P<fingerprint>[0-9a-f]{8})`", re.M)


def test_module_path(name: str) -> str | None:
    """Where the test-side module ``name`` lives: ``tests/`` itself or one of its folders (conftest.py puts all of
    them on the import path)."""
    for folder in (REPO / "tests", *sorted(path for path in (REPO / "tests").iterdir() if path.is_dir())):
        if (folder / f"{name}.py").exists():
            return (folder / f"{name}.py").relative_to(REPO).as_posix()
    return None


def test_files_read(tests: tuple[str, ...]) -> list[str]:
    """``tests`` and the test modules they import (``from test_x import ...``), recursively."""
    found, todo = [], list(tests)
    while todo:
        path = todo.pop(0)
        if path in found:
            continue
        found.append(path)
        tree = ast.parse((REPO / path).read_text())
        todo += [located for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                 and (located := test_module_path(node.module))]
    return found


def module_key(module: str) -> str:
    digest = hashlib.sha256(f"mutmut {version('mutmut')}\n".encode())
    # Not conftest.py, pytest.ini or this script: every module would be mutated again (20 minutes) for any change
    # of the shared test set-up. ``--all`` re-mutates everything after such a change when it matters.
    # A test file is named as if it lay in tests/ itself, so that moving it between test folders is not a change.
    for path in (module, *test_files_read(MODULES[module])):
        file = REPO / path
        digest.update(f"{path if path == module else 'tests/' + Path(path).name}\n".encode())
        digest.update(file.read_bytes() if file.exists() else b"(missing)")
    return digest.hexdigest()


def fingerprint(diff: str) -> str:
    """What a mutant changes (its diff's - and + lines), hashed: names a mutant across renumbering."""
    changed = [line for line in diff.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:8]


def equivalents() -> set[tuple[str, str]]:
    return {(row["name"], row["fingerprint"]) for row in EQUIVALENT_ROW.finditer(DOCS.read_text())} \
        if DOCS.exists() else set()


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict) -> None:
    ordered = {module: results[module] for module in MODULES if module in results}
    RESULTS.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")


def scratch_tree(module: str) -> Path:
    """A copy of the packages, the module's test files (and what they import) and a mutmut configuration."""
    root = Path(tempfile.mkdtemp(prefix="mutation-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "static")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    for path in {*test_files_read(MODULES[module]), "tests/conftest.py"}:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, root / path)
    shutil.copy2(REPO / "pytest.ini", root / "pytest.ini")
    lines = ["[mutmut]", "source_paths=", *(f"    {package}" for package in PACKAGES),
             "only_mutate=", f"    {module}",
             "pytest_add_cli_args_test_selection=", *(f"    {test}" for test in MODULES[module]),
             # A random order would only add noise to the timings mutmut sets its timeouts from.
             "pytest_add_cli_args=", "    -p", "    no:randomly",
             "use_git_change_detection=false"]
    (root / "setup.cfg").write_text("\n".join(lines) + "\n")
    return root


def mutate(module: str, workers: int) -> dict:
    """Run mutmut over one module; its result."""
    root = scratch_tree(module)
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
        prefix = module[:-3].replace("/", ".") + "."
        statuses = {name: status for name, status in re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", listing, re.M)
                    if name.startswith(prefix)}
        survivors = {}
        for name in sorted(name for name, status in statuses.items() if status not in DETECTED):
            shown = subprocess.run([*mutmut, "show", name], cwd=root, env=env, capture_output=True, text=True)
            diff = "\n".join(line for line in shown.stdout.splitlines() if not line.startswith("# "))
            survivors[name] = {"status": statuses[name], "fingerprint": fingerprint(diff), "diff": diff.strip()}
        timeouts = sorted(name for name, status in statuses.items() if status == "timeout")
        return {"key": module_key(module), "mutants": len(statuses), "killed": len(statuses) - len(survivors),
                "timeouts": timeouts, "seconds": round(time.monotonic() - started, 1), "survivors": survivors}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def score(entry: dict, excused: set[tuple[str, str]]) -> tuple[int, float]:
    """(equivalent survivors, killed / (mutants - equivalent))."""
    equivalent = sum((name, survivor["fingerprint"]) in excused for name, survivor in entry["survivors"].items())
    counted = entry["mutants"] - equivalent
    return equivalent, (entry["killed"] / counted if counted else 1.0)


def report(results: dict, show_survivors: bool = False) -> bool:
    excused = equivalents()
    ok = True
    print(f"{'module':38} {'mutants':>7} {'killed':>6} {'equiv.':>6} {'other':>5} {'raw':>6} {'score':>6} {'time':>6}")
    for module in MODULES:
        entry = results.get(module)
        if entry is None:
            print(f"{module:38} not mutated yet")
            ok = False
            continue
        equivalent, rate = score(entry, excused)
        other = entry["mutants"] - entry["killed"] - equivalent
        below = rate < TARGET
        ok &= not below
        raw = entry["killed"] / entry["mutants"] if entry["mutants"] else 1.0
        print(f"{module:38} {entry['mutants']:7d} {entry['killed']:6d} {equivalent:6d} {other:5d} {raw:6.1%} "
              f"{rate:6.1%} {entry['seconds']:5.0f}s{'  BELOW TARGET' if below else ''}")
    documented = DOCS.read_text() if DOCS.exists() else ""
    for module, entry in results.items():
        for name, survivor in entry["survivors"].items():
            if (name, survivor["fingerprint"]) not in excused:
                where = "counted, docs/testing.md says why" if f"`{name}`" in documented else \
                    "not explained in docs/testing.md"
                print(f"survivor {where}: {name} `{survivor['fingerprint']}` ({survivor['status']})")
                if show_survivors:
                    print("\n".join(f"    {line}" for line in survivor["diff"].splitlines()
                                    if line[:1] in "-+" and line[:3] not in ("---", "+++")))
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="re-mutate these modules whatever their key")
    parser.add_argument("--all", action="store_true", help="re-mutate every module")
    parser.add_argument("--check", action="store_true", help="check the committed results only; fail when stale")
    parser.add_argument("--survivors", action="store_true", help="only report, with each unexplained survivor's diff")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    unknown = [module for module in args.modules if module not in MODULES]
    if unknown:
        parser.error(f"not in MODULES: {', '.join(unknown)}")
    results = load_results()
    stale = [module for module in MODULES if results.get(module, {}).get("key") != module_key(module)]
    if args.check or args.survivors:
        for module in stale:
            print(f"stale: {module} or its tests changed since its last mutation run")
        return 0 if report(results, args.survivors) and not stale else 1
    todo = list(MODULES) if args.all else (args.modules or stale)
    for module in todo:
        print(f"mutating {module} ...", flush=True)
        results[module] = mutate(module, args.workers)
        save_results(results)
    if not todo:
        print("every module's result is up to date (tests/mutation_results.json)")
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
