"""Training the dual-stream network: stages, data order, checkpoints, torchrun support."""
