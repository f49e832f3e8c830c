"""What a trained model says: the figures every notebook shows (`plots`), evaluation on a test
split (`evaluate`) and on real handwriting (`real`), ONNX and int8 export (`export`), the
`Predictor` for any input (`infer`) and saliency maps of why it answered (`explain`).
Imports the stages above it: `charlib.common`, `vision`, `data` and `training`.
"""
