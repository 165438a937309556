from .model import EXPRESSIONS, ExpressionModel

__all__ = ["EXPRESSIONS", "ExpressionModel"]
