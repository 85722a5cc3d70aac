"""tests/pipeline is on sys.path (pytest puts a conftest's folder there), so the test modules
in stages/ and sources/ share ``chain``: the stage commands as dvc.yaml runs them."""
