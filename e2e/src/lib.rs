pub mod certs;
pub mod files;
pub mod harness;
pub mod kubesim;
pub mod operator;
pub mod s3;
pub mod script;
pub mod sim;
