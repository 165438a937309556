"""Video face analysis: age, gender and expression over a sequence of frames."""
