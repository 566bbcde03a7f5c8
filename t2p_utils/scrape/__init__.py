"""Step 01 (``notebooks/01_scrape.ipynb``): the sprites (``run``: npm tarball, HTTP, or ``synthetic`` creatures;
``userdata``: the Kaggle layout or your own folder), rendered to colour / line art / mask (``render``, ``lineart``),
split by family (``split``), and the captions and test instructions nobody wrote (``derive``).
"""
