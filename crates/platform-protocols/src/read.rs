//! `read` (Airbyte) and the sync mode (Singer): the engine's sync with a protocol destination.

use crate::ProtocolError;
use crate::commands::{AirbyteOut, Inputs, SingerOut};

/// Airbyte `read`.
pub fn airbyte_read(_inputs: &Inputs, _w: &AirbyteOut) -> Result<u8, ProtocolError> {
    Err(ProtocolError::system("read: not yet"))
}

/// Singer sync mode.
pub fn singer_read(_inputs: &Inputs, _w: &SingerOut) -> Result<(), ProtocolError> {
    Err(ProtocolError::system("read: not yet"))
}
