"""One error type for everything a caller can get wrong, with a stable code.

The web layer turns it into ``{"error": {"code", "message"}}`` with ``status``;
the command-line scripts print the same JSON and exit non-zero.
"""

from __future__ import annotations


class AnalysisError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(message: str) -> AnalysisError:
    return AnalysisError("sequence_not_found", message, 404)


def bad_name(message: str) -> AnalysisError:
    return AnalysisError("invalid_sequence_name", message, 400)


def no_images(message: str) -> AnalysisError:
    return AnalysisError("no_images", message, 422)


def no_face(message: str) -> AnalysisError:
    return AnalysisError("no_face", message, 422)


class ModelFileError(RuntimeError):
    """A weights file is missing or is not the file the manifest names."""
