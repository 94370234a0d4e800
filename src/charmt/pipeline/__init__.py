"""What each stage does, one shape (``run(params_file, ...)``): download, preprocess, train,
evaluate; the champion policy (promotion) and the code each stage runs (codedeps)."""
