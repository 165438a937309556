"""The pipeline: frames in, one ``SequenceResult`` out (detection, per-face models, tracking, aggregation)."""
