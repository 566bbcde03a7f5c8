"""t2p: text-guided line-art colorization study — the helper package behind the notebooks.

Every bit of logic the notebooks run lives here. Which step runs which modules (the same list
stamps each step in ``pipeline.STEP_MODULES``, so editing a module re-runs the steps that use it):

=========================  ============================================================================
step                       modules
=========================  ============================================================================
every step                 ``config`` (paths, params files, user profiles, the checks of a section),
                           ``study`` (one params file loaded and checked whole: ``StudyConfig``, a typed
                           dataclass per step), ``io`` (atomic writes), ``manifest``, ``progress`` (bars
                           in the terminal), ``threads``, ``standins``
01_scrape                  ``scrape`` (npm / http downloads), ``render`` + ``lineart`` (SVG -> colour,
                           line art, mask), ``split`` (by family), ``synthetic`` (smoke creatures),
                           ``userdata`` (Kaggle pairs, your own folder), ``derive`` (instructions
                           nobody wrote)
02_cnn_lstm_captioning     ``cnn_lstm`` (the captioner), ``tokenizer``, ``caption_sets`` (caption sets,
                           instruction folders), ``recolor`` (counterfactual copies), ``reference_csv``,
                           ``caption_metrics``
03_clip_captioning         ``clip_interrogate`` (clip-interrogator), ``palette`` (its offline stand-in),
                           ``colors`` (basic colour terms), ``caption_sets``, ``caption_metrics``
04_finetune                ``train`` (the trainer), ``train_config`` (its ``TrainConfig``, without torch),
                           ``scratch_models`` (small SD models), ``inference``,
                           ``train_report`` (04's tables, figures, model card)
05_compare                 ``evaluate`` (generation, scoring, colour control), ``metrics``, ``inference``,
                           ``figures`` (grids, colour ladders, bar charts), ``flat`` (the drawing coloured
                           flat at its own size), ``drawing`` (the test characters at that size)
the report, the runner     ``report`` (``reports/<p>/index.html``), ``pipeline`` (``run_all.sh``),
                           ``repocheck`` (CI's checks of the repository)
the demo                   ``demo`` (Gradio), ``onnx_unet`` (its UNets on onnxruntime on CPU), ``colab``
                           (the notebooks' setup cell in Colab)
=========================  ============================================================================
"""

__version__ = "0.1.0"
