"""The datasets: what a source name means (`sources`), downloads with progress and clear offline
errors (`download`, `emnist`), the built-in synthetic sets drawn from stroke fonts
(`handwriting`, `synth`), photo renderings for tests and augmentation (`photos`), loading any
source into train/validation/test arrays with a cache (`loading`), and the pad's saved drawings
(`mine`, for teaching it your hand).
Imports `charlib.common` and `charlib.vision`.
"""
