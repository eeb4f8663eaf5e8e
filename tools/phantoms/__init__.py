"""Phantom radiographs with exact truth, for the measurement methods' accuracy figures.

``render`` holds what every phantom shares (projection of tube-like bone, soft tissue,
scatter, blur, quantum noise, bit depth, MONOCHROME1, DICOM files, photos of the printed
film); each body part's geometry is its own module. ``stats`` holds the figures the cards
report. Everything is deterministic from its seed.
"""
