"""Training a model: augmentation on the training device (`augment`), batching (`batches`), the
architectures (`model`), the learning-rate schedule (`schedule`), time budgets turned into
epochs (`budget`), every setting of a run with the recipes as presets (`settings`), torchrun's
processes (`distributed`), checkpoints (`checkpoint`), the epoch loop (`loop`), `fit` which sets
it up and plans it (`train`) and fine-tuning on your hand (`finetune`).
Imports `charlib.common`, `charlib.vision` and `charlib.data`.
"""
