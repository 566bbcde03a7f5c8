"""t2p: text-guided line-art colorization study -- the helper package behind the notebooks.

Every bit of logic the notebooks run lives here, in one folder per step of the study. Imports point one way, from
the top of this table to the bottom (``tests/test_layout.py`` checks it, and that there is no import circle); a
step's code is its folder plus everything it imports, and the runner re-runs a step when any of it changes
(:mod:`t2p_utils.runner.codegraph`); every cache inside a step keys on its settings, inputs and code the same way
(:func:`t2p_utils.core.stamps.cache_key`).

=============  =====================================================================================
folder         what it holds
=============  =====================================================================================
``core``       what every step shares: atomic writes, colour names, the palette reader, places on a
               character, the closed regions and the flat fill, the manifest, progress bars
``config``     every step's settings (one dataclass per params section) and the one loader,
               ``load_study(profile_or_file)``
``scrape``     01_scrape: sprites, rendering, line art, the split, derived instructions
``captions``   02_cnn_lstm_captioning and 03_clip_captioning: the captioners, caption sets, instruction
               folders, recolouring, phrasings
``inference``  a saved pipeline colouring line art (04's previews, 05, the demo)
``train``      04_finetune: data, loss, models, the shared VAE, the loop, the model card
``compare``    05_compare: generation and scoring, metrics, figures, the report
``demo``       the Gradio demo
``runner``     ``./run_all.sh``, the import graph, CI's repository checks, the Colab set-up cell
=============  =====================================================================================
"""

__version__ = "0.1.0"
