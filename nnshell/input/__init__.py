"""The input pipeline: image files to network tensors (``images``), the on-device input
formatter (``formatter``) and the safe normalisation expressions (``expr``)."""
