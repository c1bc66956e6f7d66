"""Small helpers every layer may use: YAML files, dotted keys, strict dataclasses, provenance.

Nothing here imports another kanplatform package, torch, OmegaConf, Ray or W&B.
"""
