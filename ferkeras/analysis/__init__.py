"""``ferkeras analyze``: emotion analysis of recorded videos for research (the ``[analyze]`` extra).

See docs/analyze.md. :func:`ferkeras.analyze` is the Python entry point.
"""
