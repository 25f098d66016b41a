pub mod harness;
pub mod kubesim;
pub mod script;
pub mod sim;
