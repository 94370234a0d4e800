"""The translator as an MLflow pyfunc model."""
