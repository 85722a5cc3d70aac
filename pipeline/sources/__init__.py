"""Where one-shots come from: each source lists files for the ``collect`` stage."""
