"""Step 04 (``notebooks/04_finetune.ipynb``): the instruction folders as tensors (``data``), the IP2P objective as pure
functions (``loss``), the scratch models (``models``, ``tokenizer``) and their shared VAE (``vae``), the training
loop with checkpoints and resume (``loop``, ``checkpoints``; ``python -m t2p_utils.train``), and what 04 shows of a
run plus the model card (``report``).
"""
