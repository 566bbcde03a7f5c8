"""t2p: text-guided line-art colorization study — the helper package behind the notebooks.

Every bit of logic the notebooks run lives here, one module per idea: ``config`` (paths and
params), ``scrape``/``render``/``lineart``/``split``/``synthetic`` (step 01), ``colors``,
``palette``, ``cnn_lstm``, ``clip_caption``, ``captioning``, ``caption_metrics`` (02-03),
``train`` (04), ``metrics``, ``evaluate``, ``grids``, ``report`` (05) and ``pipeline``
(the headless runner behind ``run_all.sh``).
"""

__version__ = "0.1.0"
