"""What the pipeline's stages do: training, promotion, the code each stage runs."""
