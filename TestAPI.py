"""Analyse one sequence folder without the server and print the legacy result.

    python TestAPI.py [FOLDER]

The folder comes from the command line or, as in the original, from the first
line of the file ``testInput``. Errors are printed as the service's JSON error
and the exit status is non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

from faceanalysis.cli import exit_with, settings_from, setup_logging
from facecore.errors import AnalysisError, ModelFileError

HERE = Path(__file__).resolve().parent


def sequence_path(argv: list[str]) -> Path:
    if len(argv) > 1:
        return Path(argv[1])
    input_file = HERE / "testInput"
    lines = input_file.read_text(encoding="utf-8").splitlines() if input_file.is_file() else []
    if not lines or not lines[0].strip():
        sys.exit(f"no sequence given: pass a folder or write its path on the first line of {input_file}")
    path = Path(lines[0].strip())
    return path if path.is_absolute() else HERE / path


def main(argv: list[str]) -> None:
    setup_logging("WARNING")
    from faceanalysis.pipeline.analyzer import FaceAnalyzer
    from faceanalysis.writers.legacy import legacy_json

    try:
        result = FaceAnalyzer(settings_from()).prepare().analyse_folder(sequence_path(argv))
    except (AnalysisError, ModelFileError) as error:
        exit_with(error)
    print(legacy_json(result))


if __name__ == "__main__":
    main(sys.argv)
