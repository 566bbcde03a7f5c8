"""Step 05 (``notebooks/05_compare.ipynb``): every model on every test character, scored (``run``: generation, colour
control, binding, summaries and findings), the image metrics and bootstrap statistics (``metrics``), the test
characters at their own size (``drawing``), the figures (``figures``) and the study's front page (``report``).
"""
