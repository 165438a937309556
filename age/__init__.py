from .network import AgeModel

__all__ = ["AgeModel"]
