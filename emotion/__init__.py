from .model import EXPRESSIONS, ExpressionModel, expression_model

__all__ = ["EXPRESSIONS", "ExpressionModel", "expression_model"]
