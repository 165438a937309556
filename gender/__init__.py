from .network import GenderModel

__all__ = ["GenderModel"]
