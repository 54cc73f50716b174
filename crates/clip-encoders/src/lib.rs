//! CLIP-family encoders on Burn: ViT image tower, BERT and CLIP text towers.
