"""Any input to the model's view: decoding files and arrays (`images`), the pad's pen strokes
(`strokes`), finding the ink on a photo or a scan (`ink`), and the one path from whatever a user
hands in to the 28 px white-on-black image a model sees (`preprocess`).
Imports only `charlib.common`. It comes before `charlib.data` because the data stage renders
its glyphs and photos through this stage's framing, so both see exactly what a model will see.
"""
