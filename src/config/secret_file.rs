//! Reading a credential file (a source's `token_file`, the SMTP `password_file`) so that a wrong path cannot hang,
//! exhaust memory or leak: the file must be a regular file (after following symlinks) of at most
//! [`MAX_SECRET_FILE_BYTES`], it is opened without blocking, and an error names the key and what is wrong without
//! repeating a value that looks like a secret itself.
//!
//! Why each check: `/dev/zero` as a token file used to be read until memory ran out, a FIFO blocked start-up until a
//! writer came, and a directory gave an OS error. A token pasted where its path belongs (`token_file: abc123…`) was
//! repeated in the "cannot read" error, which ends up in logs and terminals.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The largest credential file accepted, bytes. A token or a password is a few hundred bytes at most; 64 KiB leaves
/// room for a long JWT or a PEM-wrapped key while keeping a wrong path (a log, a device) from being read whole.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a credential file could not be read. `Display` completes the sentence "the file named in `<key>` …" and never
/// quotes the file's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    /// Nothing exists at the path (or a symlink points nowhere).
    #[error("was not found")]
    NotFound,
    /// The process may not read it.
    #[error("cannot be read: permission denied")]
    PermissionDenied,
    /// A directory, a device, a FIFO or a socket.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than [`MAX_SECRET_FILE_BYTES`].
    #[error(
        "is larger than {MAX_SECRET_FILE_BYTES} bytes; a credential file holds only the secret"
    )]
    TooLarge,
    /// Nothing but whitespace (checked by the caller, which knows how the secret is trimmed).
    #[error("is empty")]
    Empty,
    /// Not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotText,
    /// Another I/O error, in the operating system's words (which never quote the content).
    #[error("cannot be read: {0}")]
    Io(String),
}

/// A credential file's content, and whether its permissions let group or others read it.
pub struct SecretText {
    /// The whole file as read; callers trim it as their format wants.
    pub text: String,
    /// The permission bits (`0o644`) when group or others may read the file, `None` when only the owner may.
    pub readable_by_others: Option<u32>,
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretText")
            .field("text", &"[REDACTED]")
            .field("readable_by_others", &self.readable_by_others)
            .finish()
    }
}

/// Reads the credential file at `path` (already resolved against the config file's folder).
///
/// The type is checked twice: before opening (so a FIFO is never opened) and on the open descriptor (so a file
/// swapped in between is caught too); `O_NONBLOCK` makes even that race unable to block. At most
/// [`MAX_SECRET_FILE_BYTES`] + 1 bytes are ever read, whatever the file claims to be.
pub fn read_secret_file(path: &Path) -> Result<SecretText, SecretFileError> {
    let meta = std::fs::metadata(path).map_err(io_error)?;
    check_type(&meta)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    check_type(&meta)?;
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge);
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText)?;
    let mode = meta.permissions().mode() & 0o777;
    Ok(SecretText {
        text,
        readable_by_others: (mode & 0o044 != 0).then_some(mode),
    })
}

/// Accepts a regular file only, naming what it is otherwise.
fn check_type(meta: &std::fs::Metadata) -> Result<(), SecretFileError> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(SecretFileError::NotRegular(what))
}

fn io_error(e: std::io::Error) -> SecretFileError {
    match e.kind() {
        std::io::ErrorKind::NotFound => SecretFileError::NotFound,
        std::io::ErrorKind::PermissionDenied => SecretFileError::PermissionDenied,
        _ => SecretFileError::Io(e.to_string()),
    }
}

/// The message for a credential file at key `key` (`token_file`) written as `written` and resolved to `resolved`:
/// "the file named in token_file (/etc/x/token) was not found". The path is shown only when `written` does not look
/// like a secret; otherwise it is left out and a hint says the value looks like a token pasted in place of its path.
pub fn describe(key: &str, written: &str, resolved: &Path, error: &SecretFileError) -> String {
    if looks_like_token(written) {
        format!(
            "the file named in {key} {error} (the value itself looks like a token: {key} takes the path of a file \
             holding it; the value is not repeated here)"
        )
    } else {
        format!("the file named in {key} ({}) {error}", resolved.display())
    }
}

/// Returns true if and only if `value`, written where a path or a variable name belongs, looks like a credential:
/// at least 16 characters, no whitespace, and either a JWT (`eyJ…`) or a single word with no path separator, no
/// extension and a mix of letters and digits. Deliberately generous: hiding a strange path costs the operator a
/// look at the line number; showing a token costs a secret.
pub fn looks_like_token(value: &str) -> bool {
    let v = value.trim();
    if v.chars().count() < 16 || v.chars().any(char::is_whitespace) {
        return false;
    }
    if v.starts_with("eyJ") {
        return true;
    }
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_alpha = v.chars().any(|c| c.is_alphabetic());
    !v.contains(['/', '\\', '.', '~']) && has_digit && has_alpha
}

/// Returns true if and only if `value` can be shown as an environment variable name in an error: a valid name
/// (`[A-Za-z_][A-Za-z0-9_]*`) that does not look like a token. Conventional names (upper case) are always shown.
pub fn shows_as_variable_name(value: &str) -> bool {
    let mut chars = value.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let conventional = value
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid && (conventional || !looks_like_token(value))
}

/// Logs, once per load, that a credential file is readable by group or others.
pub fn warn_if_readable_by_others(key: &str, path: &Path, text: &SecretText) {
    if let Some(mode) = text.readable_by_others {
        tracing::warn!(
            key,
            path = %path.display(),
            mode = format!("{mode:04o}"),
            "a credential file is readable by group or others; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    #[test]
    fn a_regular_file_is_read_and_its_loose_permissions_reported() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"tok\n").unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let got = read_secret_file(f.path()).unwrap();
        assert_eq!(
            (got.text.as_str(), got.readable_by_others),
            ("tok\n", Some(0o644))
        );
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(f.path()).unwrap().readable_by_others, None);
        assert!(!format!("{got:?}").contains("tok"));
    }

    #[test]
    fn devices_fifos_directories_and_large_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        let link = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        for (path, want) in [
            (
                Path::new("/dev/zero"),
                SecretFileError::NotRegular("a character device"),
            ),
            (&fifo, SecretFileError::NotRegular("a FIFO (named pipe)")),
            (dir.path(), SecretFileError::NotRegular("a directory")),
            (&big, SecretFileError::TooLarge),
            (&link, SecretFileError::NotFound),
        ] {
            let started = Instant::now();
            assert_eq!(read_secret_file(path).err(), Some(want), "{path:?}");
            assert!(started.elapsed() < Duration::from_secs(1), "{path:?}");
        }
    }

    #[test]
    fn a_value_that_looks_like_a_token_is_never_repeated() {
        let resolved = Path::new("/etc/exporter/abcdef123456secret");
        let message = describe(
            "token_file",
            "abcdef123456secret",
            resolved,
            &SecretFileError::NotFound,
        );
        assert!(!message.contains("abcdef123456secret"), "{message}");
        assert!(
            message.starts_with("the file named in token_file was not found"),
            "{message}"
        );
        assert!(message.contains("looks like a token"), "{message}");
        let message = describe(
            "token_file",
            "secrets/celigo.token",
            Path::new("/etc/x/secrets/celigo.token"),
            &SecretFileError::NotFound,
        );
        assert_eq!(
            message,
            "the file named in token_file (/etc/x/secrets/celigo.token) was not found"
        );
    }

    #[test]
    fn token_shapes_are_recognised_and_paths_and_names_are_not() {
        for (value, token) in [
            ("abcdef123456secret", true),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", true),
            ("0123456789abcdef0123456789abcdef", true),
            ("/run/secrets/celigo_token", false),
            ("celigo.token", false),
            ("token", false),
            ("CELIGO_TOKEN", false),
        ] {
            assert_eq!(looks_like_token(value), token, "{value}");
        }
        assert!(shows_as_variable_name("CELIGO_PRODUCTION_TOKEN_2"));
        assert!(shows_as_variable_name("celigo_token"));
        assert!(!shows_as_variable_name("a3f9c2e1b4d5a6f7e8d9"));
        assert!(!shows_as_variable_name("has space"));
    }
}
