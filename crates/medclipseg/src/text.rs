//! Prompts to token ids: the tokenizer of the model's text tower, from the library.

pub use medclipseg_pipeline::Prompts;
