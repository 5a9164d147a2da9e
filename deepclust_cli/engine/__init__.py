"""The engine methods share: sessions, checkpoints, devices, progress, optimizers."""
