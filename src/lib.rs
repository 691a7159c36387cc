//! vestibule: serves data-science web apps to many users behind one login.

pub mod config;
pub mod demo_app;
