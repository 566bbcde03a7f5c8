"""``python -m t2p_utils.train``: the trainer's command line (:func:`t2p_utils.train.loop.main`)."""

import sys

from t2p_utils.train.loop import main

main(sys.argv[1:])
