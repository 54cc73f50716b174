//! Checkpoints: placeholder until torch-checkpoint lands.
