"""The small core every other layer stands on: labels, errors, weights manifest, device, onnxruntime
sessions, frame decoding, face batches (detections, alignment, crops) and the face embedding. It imports
nothing else of the project."""
