from .model import GenderModel

__all__ = ["GenderModel"]
