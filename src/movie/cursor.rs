//! A bounds-checked position in a file's bytes, shared by the binary format parsers (DM, SER):
//! every read checks the length first, so a lying header gives an error, never a panic or a huge
//! allocation.

use crate::error::{Error, Result};
use std::path::Path;

pub(super) struct ByteCursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
    path: &'a Path,
    /// Format name in messages ("corrupt {format} file at byte …").
    pub format: &'static str,
}

impl<'a> ByteCursor<'a> {
    pub fn new(bytes: &'a [u8], path: &'a Path, format: &'static str) -> Self {
        ByteCursor {
            bytes,
            pos: 0,
            path,
            format,
        }
    }

    pub fn bad(&self, msg: impl Into<String>) -> Error {
        Error::format(
            self.path,
            format!(
                "corrupt {} file at byte {}: {}",
                self.format,
                self.pos,
                msg.into()
            ),
        )
    }

    /// Bytes after the position.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Move to `pos`, which must lie within the file.
    pub fn at(&mut self, pos: u64) -> Result<()> {
        if pos > self.bytes.len() as u64 {
            return Err(self.bad(format!("an offset {pos} beyond the end of the file")));
        }
        self.pos = pos as usize;
        Ok(())
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.bad(format!("{n} bytes needed, the file ends first")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}
