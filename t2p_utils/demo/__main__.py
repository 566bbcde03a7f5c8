"""``python -m t2p_utils.demo``: the colouring demo (:func:`t2p_utils.demo.app.main`)."""

from t2p_utils.demo.app import main

main()
