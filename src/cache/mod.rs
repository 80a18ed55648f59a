//! The cache engine: tiers, codecs and the manager that composes them.

pub mod disk;
