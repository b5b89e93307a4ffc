//! Helpers shared by every integration-test module, each written once.

pub mod fake_upstream;
pub mod process;
pub mod smtp;
