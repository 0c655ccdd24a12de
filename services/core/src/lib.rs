//! shiplog's domain core: the event model, the ledger's rules and the
//! projections built from it.
//!
//! Invariant: this crate does no I/O. It has no runtime, no database, no
//! network, no clock and no file system; everything it knows arrives as an
//! argument, so every rule here is a pure function that cannot fail for
//! reasons outside its inputs.

pub mod audit;
pub mod canonical;
pub mod checkpoint;
pub mod delivery;
pub mod event;
pub mod facts;
pub mod generate;
pub mod index;
pub mod ingest;
pub mod merkle;
pub mod name;
pub mod record;
pub mod schema;
pub mod stats;
mod symbols;

pub use event::{Author, EventData, EventError, EventType, ExpectedVersion, Link, NewEvent};
pub use name::{Name, Sha, StreamName};
pub use record::{Receipt, RecordedEvent};
