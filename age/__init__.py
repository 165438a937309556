from .model import AgeModel

__all__ = ["AgeModel"]
