"""The architectures, their optimizers, and the models/ directory format."""
