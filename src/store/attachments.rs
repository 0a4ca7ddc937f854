//! Where attachments' bytes are kept: small ones in the store
//! (`attachment_content`, written with the batch's rows), larger ones as
//! files content-addressed under the state directory.
//!
//! A file costs an inode, a sync of its data and one of its directory: for
//! the small attachments that are most of them (logos in signatures, short
//! logs) that was a fifth of a batch's time, and the store's transaction
//! makes them durable for free. Large ones stay files, so the database does
//! not grow by every PDF received and stays quick to back up and copy.
//!
//! A file is named by the SHA-256 of its bytes, so the logo in every
//! signature of a long thread is stored once, and writing the same file
//! twice (a batch retried after a crash) is a no-op. Files are written
//! before the batch commits (a temp file renamed into place); a batch that
//! then fails leaves at most an unreferenced file, never a row pointing at
//! nothing.
//!
//! The batch's commit survives a power cut (`synchronous = FULL`), so its
//! files must too: each file's data is synced before it is renamed into
//! place, and each directory that gained a name is synced before the batch
//! commits. Without that, ext4 may keep the rename and lose the data,
//! leaving an empty file under a name a committed row points at. A file
//! found under its name with the wrong size (such a leftover) is written
//! again.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest attachment kept in the store rather than as a file.
pub const STORED_UP_TO: usize = 64 * 1024;

/// Whether an attachment of `size` bytes is kept in the store.
pub fn kept_in_store(size: usize) -> bool {
    size <= STORED_UP_TO
}

/// Numbers temp file names within the process.
static TEMP_NAMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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

    /// Writes a batch's files (SHA-256 in hex, bytes) durably, each unless
    /// a file with its hash is already there: every file synced, then every
    /// directory that gained one, so all are on disk once this returns.
    ///
    /// The syncs are issued all at once from threads of their own: synced
    /// one after the other, a batch's dozen files cost a dozen journal
    /// commits in a row (the batch's longest step); issued together, the
    /// filesystem folds them into a few.
    pub fn put_all<'a>(&self, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<()> {
        let mut dirs = BTreeSet::new();
        let files: Vec<(&str, &[u8])> = files.into_iter().collect();
        // A bounded number of files open at once: a batch may carry
        // thousands, past the process's file-descriptor limit.
        for window in files.chunks(OPEN_FILES) {
            self.put_window(window, &mut dirs)?;
        }
        let opened = dirs
            .iter()
            .map(|dir| std::fs::File::open(dir).map_err(|e| Error::io(dir, e)))
            .collect::<Result<Vec<_>>>()?;
        sync_together(dirs.iter().map(PathBuf::as_path).zip(&opened), |d| d.sync_all())
    }

    /// Writes, syncs and renames a few files; adds to `dirs` every
    /// directory whose names must be synced.
    fn put_window(&self, files: &[(&str, &[u8])], dirs: &mut BTreeSet<PathBuf>) -> Result<()> {
        let mut written: Vec<(std::fs::File, PathBuf, PathBuf)> = Vec::new();
        let mut temps: Vec<PathBuf> = Vec::new();
        let done = (|| {
            for (sha256, data) in files {
                let path = self.path(sha256);
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                if std::fs::metadata(&path).is_ok_and(|m| m.len() == data.len() as u64) {
                    // Its name may not be synced yet (an earlier attempt
                    // failed at that step, or another process is at it).
                    dirs.insert(dir);
                    continue;
                }
                if !dir.is_dir() {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    // The new shard directory's own name lives in the root.
                    dirs.insert(self.root.clone());
                }
                // Unique per write: two batches of this process may store
                // the same file at the same moment.
                let n = TEMP_NAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tmp = dir.join(format!(".{sha256}.{}.{n}", std::process::id()));
                temps.push(tmp.clone());
                let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                file.write_all(data).map_err(|e| Error::io(&tmp, e))?;
                written.push((file, tmp, path));
                dirs.insert(dir);
            }
            // Data first, then the names: a name must never point at data
            // that is not on disk.
            sync_together(written.iter().map(|(file, tmp, _)| (tmp.as_path(), file)), |f| {
                f.sync_data()
            })?;
            for (_, tmp, path) in &written {
                std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
            }
            Ok(())
        })();
        if done.is_err() {
            // No temp file left behind by a failed attempt (renamed ones
            // are gone from their temp name already).
            for tmp in &temps {
                let _ = std::fs::remove_file(tmp);
            }
        }
        done
    }
}

/// Most attachment files open at once.
const OPEN_FILES: usize = 64;

/// Most syncs issued at once (a thread each).
const SYNC_THREADS: usize = 4;

/// Runs `sync` on every file, up to [`SYNC_THREADS`] at a time; the
/// first failure is returned with its path.
fn sync_together<'a>(
    files: impl Iterator<Item = (&'a Path, &'a std::fs::File)>,
    sync: fn(&std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let files: Vec<(&Path, &std::fs::File)> = files.collect();
    if files.len() <= 1 {
        return files
            .iter()
            .try_for_each(|(path, f)| sync(f).map_err(|e| Error::io(path, e)));
    }
    let per_thread = files.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .try_for_each(|(path, f)| sync(f).map_err(|e| Error::io(path, e)))
                })
            })
            .collect();
        // The scope joins every thread before it returns, failed or not.
        threads
            .into_iter()
            .try_for_each(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// The hex SHA-256 of `data`, as mails are keyed.
pub use crate::message::sha256_hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_once_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentDir::new(dir.path());
        let sha = sha256_hex(b"logo");
        store.put_all([(sha.as_str(), b"logo".as_slice())]).unwrap();
        let path = store.path(&sha);
        assert!(path.starts_with(dir.path().join(&sha[..2])));
        assert_eq!(std::fs::read(&path).unwrap(), b"logo");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        store.put_all([(sha.as_str(), b"logo".as_slice())]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    /// A batch with more files than are kept open at once (and than sync
    /// threads): every file is under its name with its bytes, and no temp
    /// file is left.
    #[test]
    fn many_files_are_synced_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentDir::new(dir.path());
        let data: Vec<Vec<u8>> = (0..2 * OPEN_FILES + SYNC_THREADS + 1)
            .map(|i| format!("file {i}").into_bytes())
            .collect();
        let shas: Vec<String> = data.iter().map(|d| sha256_hex(d)).collect();
        store
            .put_all(shas.iter().map(String::as_str).zip(data.iter().map(Vec::as_slice)))
            .unwrap();
        for (sha, d) in shas.iter().zip(&data) {
            assert_eq!(&std::fs::read(store.path(sha)).unwrap(), d);
        }
        let names: usize = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(names, data.len(), "no temp file left");
    }

    #[test]
    fn an_empty_leftover_under_the_name_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentDir::new(dir.path());
        let sha = sha256_hex(b"contract");
        let path = store.path(&sha);
        // What a power cut can leave: the rename kept, the data lost.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        store
            .put_all([
                (sha.as_str(), b"contract".as_slice()),
                (sha.as_str(), b"contract".as_slice()),
            ])
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"contract");
    }
}
