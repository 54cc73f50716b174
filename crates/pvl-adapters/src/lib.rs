//! Probabilistic Vision-Language adapters (MedCLIPSeg §1.3).
