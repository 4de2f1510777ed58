"""Stage 02: sample regions, labels and the training set (paper section 2.2)."""
