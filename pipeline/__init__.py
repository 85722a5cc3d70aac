"""Data pipeline: pure audio functions plus one stage runner that does all file I/O."""
