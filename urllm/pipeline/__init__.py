"""A run: the torch-free config, the run folder's writer and lock, and the stages in order."""
