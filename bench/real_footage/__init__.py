"""Real-footage benchmark: the service's answers on real clips, scored against truth made by looking.

``python -m bench.real_footage`` (``__main__.py``); the truth in ``truth/`` (``truth.py``), made with the labelling
helper ``label.py``; the scoring in ``metrics.py`` (pure); ``dump.py`` writes another checkout's answers.
"""
