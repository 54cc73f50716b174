//! The MedCLIPSeg model: encoders + PVL adapters + decoder, losses, Monte-Carlo inference.
