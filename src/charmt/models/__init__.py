"""The architectures (a module each; ``architectures`` chooses), their optimizers, and the models/
directory format."""
