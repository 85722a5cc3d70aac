"""One thin module per DVC stage: read the settings, build the jobs, call the pure audio
functions (pipeline.audio), hand them to the runner.

    python -m pipeline.stages.<stage> IN OUT
"""
