"""The colouring demo (``python -m t2p_utils.demo``): type a sentence, see the line art coloured flat at its own size
(``app``), with exact colours for hex codes and CSS names (``exact_colors``).
"""
