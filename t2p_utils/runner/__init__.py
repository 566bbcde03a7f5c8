"""What runs the study and checks the repository: ``./run_all.sh`` (``pipeline``: notebooks 01..05 through
papermill, stamps, resume, the report), the import graph that decides what a step's code is (``codegraph``),
CI's repository checks (``repocheck``) and the notebooks' Colab set-up cell (``colab``).
"""
