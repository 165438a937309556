"""The ``FaceBatch`` of a set of face crops, as the service builds it for ``analyse_images(faces_given=True)``.

Every trainer feeds its models this batch, so what a model learns from and is scored on goes through the
same crop path as the service's answers.
"""

from __future__ import annotations

import numpy as np

from facecore.faces import Aligner, Detections, FaceBatch


def faces_given(images, aligner: Aligner | None = None) -> FaceBatch:
    """Each whole image is one face box. Grey (h, w) images become the decoder's 3-channel RGB. With an
    ``aligner``, dlib's 5-point landmarks inside each box, which the age, gender and embedding networks read
    (the expression crops need none)."""
    frames = [np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image for image in images]
    detections = Detections.whole_images(frames)
    faces = FaceBatch(frames=frames, detections=detections, whole_image_faces=True)
    if aligner is not None:
        faces.shapes = aligner.run(frames, detections)
    return faces
