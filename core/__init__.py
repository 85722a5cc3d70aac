"""The project's foundation: params, errors, files, audio I/O. Imports nothing of the project."""
