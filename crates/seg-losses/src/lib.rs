//! Segmentation losses: BCE, Dice (reference row-wise and per-image), SoftCon.
