"""Training and evaluation: one toolkit (data, splits, faces-given batches, scoring, shipping) for every trained
model, and the entry points that use it."""
