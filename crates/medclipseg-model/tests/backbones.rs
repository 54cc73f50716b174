//! Golden parity of the CLIP, PubMedCLIP and BiomedCLIP variants on the default CPU backend
//! (Flex); the cases are in `backbone_cases`.

mod backbone_cases;

use burn::backend::{Autodiff, Flex};

backbone_cases::backbone_tests!(Flex, Autodiff<Flex>, burn::backend::flex::FlexDevice);
