"""The translator as an MLflow pyfunc model, and publishing a trained one (what its run logs)."""
