"""Files and processes: atomic writes, the project's paths, child processes."""
