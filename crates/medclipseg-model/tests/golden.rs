//! Golden parity on the default CPU backend (Flex); the cases are in `golden_cases`.

mod golden_cases;

use burn::backend::{Autodiff, Flex};

golden_cases::golden_tests!(Flex, Autodiff<Flex>, burn::backend::flex::FlexDevice);
