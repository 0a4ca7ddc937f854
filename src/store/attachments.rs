//! Attachment files: content-addressed under the state directory.
//!
//! A file is named by the SHA-256 of its bytes, so the logo in every
//! signature of a long thread is stored once, and writing the same file
//! twice (a batch retried after a crash) is a no-op. Files are written
//! before the batch commits (a temp file renamed into place); a batch that
//! then fails leaves at most an unreferenced file, never a row pointing at
//! nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The directory attachment files live in.
#[derive(Debug, Clone)]
pub struct AttachmentDir {
    root: PathBuf,
}

impl AttachmentDir {
    pub fn new(root: impl Into<PathBuf>) -> AttachmentDir {
        AttachmentDir { root: root.into() }
    }

    /// The directory itself, for messages about it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this SHA-256 (hex) lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// Writes `data` unless a file with its hash is already there.
    pub fn put(&self, sha256: &str, data: &[u8]) -> Result<()> {
        let path = self.path(sha256);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = dir.join(format!(".{sha256}.{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(data).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

/// The hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_once_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentDir::new(dir.path());
        let sha = sha256_hex(b"logo");
        store.put(&sha, b"logo").unwrap();
        let path = store.path(&sha);
        assert!(path.starts_with(dir.path().join(&sha[..2])));
        assert_eq!(std::fs::read(&path).unwrap(), b"logo");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        store.put(&sha, b"logo").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
