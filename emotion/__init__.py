from .model import ExpressionModel

__all__ = ["ExpressionModel"]
