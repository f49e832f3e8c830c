"""charlib: handwritten character recognition, notebook first.

The subpackages are the pipeline's stages, in the order they may import one another:
`common` (plumbing) -> `vision` (any input to the model's view) -> `data` (datasets) ->
`training` -> `inference` (evaluation, export, prediction, figures) -> `apps` (the pad and the
REST API) -> `workflow` (notebook pipelines, sweeps, comparisons) -> `cli`. A module imports only
what comes before it (tests/test_architecture.py holds the order).
"""
