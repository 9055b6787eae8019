use std::fmt;

/// Why a string is not an upload session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upload session id {0:?} is not a UUID")]
pub struct UploadIdError(pub String);

/// The id of a blob upload session: a random UUID in its hyphenated lowercase form.
///
/// It appears in upload URLs (`/v2/<name>/blobs/uploads/<id>`) and in the
/// `Docker-Upload-UUID` header (distribution-spec §Pushing a blob in chunks).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id (UUID v4).
    pub fn generate() -> UploadId {
        UploadId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Parses an id received from a client. Errors: [`UploadIdError`] when it is not a UUID.
    pub fn parse(text: &str) -> Result<UploadId, UploadIdError> {
        let uuid = uuid::Uuid::try_parse(text).map_err(|_| UploadIdError(text.to_owned()))?;
        let canonical = uuid.hyphenated().to_string();
        if canonical != text {
            return Err(UploadIdError(text.to_owned()));
        }
        Ok(UploadId(canonical))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = UploadId::generate();
        assert_eq!(UploadId::parse(id.as_str()), Ok(id));
        assert!(UploadId::parse("../../etc/passwd").is_err());
        assert!(UploadId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").is_err());
    }
}
