//! Read PyTorch and safetensors checkpoints as plain data (no code execution).
