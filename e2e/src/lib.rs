pub mod harness;
pub mod script;
