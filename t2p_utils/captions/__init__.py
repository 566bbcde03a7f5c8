"""Steps 02 and 03 (``notebooks/02_cnn_lstm_captioning.ipynb``, ``03_clip_captioning.ipynb``): the two captioners
(``cnn_lstm``; ``clip_interrogate``, with the palette stand-in offline), their caption sets and the instruction
folders 04 trains on (``sets``), counterfactual and part-level recolouring (``recolor``), the phrasings of the
instructions (``templates``) and caption quality (``quality``).
"""
