//! Tokenizers of the CLIP-family text towers: BERT WordPiece and OpenAI CLIP BPE.
