"""Steps 02 and 03 (``notebooks/02_cnn_lstm_captioning.ipynb``, ``03_clip_captioning.ipynb``): the two captioners
(``cnn_lstm``; ``clip_interrogate``, with the palette stand-in offline), each sprite captioned and the caption sets
written (``sets``), the instruction folders 04 trains on (``instructions``), one source end to end and its cache
(``run``), counterfactual and part-level recolouring (``recolor``), the phrasings of the instructions
(``templates``), caption quality (``quality``) and what the two notebooks show (``report``).
"""
