//! The one encoding of sluice-raft: everything written to sled (log entries,
//! vote, state-machine image, snapshots) and, later, every Raft RPC body.
//!
//! What: [`encode`] / [`decode`] with bincode 2's serde API and its
//! `standard()` configuration (little endian, variable-length integers).
//!
//! Why one place: the bytes on disk and on the wire must agree between nodes
//! and across restarts; keeping the format in one module means one place to
//! change it.
//!
//! How the model fits in: `sluice_model` shapes several enums for its JSON API
//! as *internally tagged* (`#[serde(tag = "op")]`). Deserializing those needs
//! `deserialize_any`, which bincode — a format that does not describe itself —
//! cannot offer. Fields that hold such model values are therefore declared
//! `#[serde(with = "crate::codec::as_json")]`: in bincode they travel as a
//! JSON string, in a self-describing format (JSON) as themselves.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Encoding or decoding failed.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The bytes hold a valid value followed by bytes that belong to nothing.
    #[error("cannot decode: {trailing} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes were left over.
        trailing: usize,
    },
}

/// Encodes `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

/// Decodes one `T` that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            trailing: bytes.len() - read,
        });
    }
    Ok(value)
}

/// `#[serde(with = "crate::codec::as_json")]`: a field whose type needs a
/// self-describing format (see the module docs) is written as a JSON string
/// when the format is not human-readable (bincode), and as itself otherwise.
pub mod as_json {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes `value` (as a JSON string in bincode).
    pub fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        if serializer.is_human_readable() {
            value.serialize(serializer)
        } else {
            let json = serde_json::to_string(value).map_err(S::Error::custom)?;
            serializer.serialize_str(&json)
        }
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: DeserializeOwned,
        D: Deserializer<'de>,
    {
        if deserializer.is_human_readable() {
            T::deserialize(deserializer)
        } else {
            let json = String::deserialize(deserializer)?;
            serde_json::from_str(&json).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::{Command, DrainPolicy};

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Wrapped {
        #[serde(with = "as_json")]
        command: Command,
        n: u64,
    }

    fn command() -> Command {
        Command::CreateGroup {
            name: "web".into(),
            drain: DrainPolicy::default(),
            slow_start_ms: None,
        }
    }

    #[test]
    fn round_trip() {
        let v = (7u64, String::from("x"), vec![1u8, 2, 3]);
        assert_eq!(
            decode::<(u64, String, Vec<u8>)>(&encode(&v).unwrap()).unwrap(),
            v
        );
    }

    #[test]
    fn internally_tagged_model_enums_need_as_json() {
        // Plain bincode cannot decode the model's tagged enums...
        let bytes = encode(&command()).unwrap();
        assert!(matches!(
            decode::<Command>(&bytes),
            Err(CodecError::Decode(_))
        ));
        // ...through `as_json` they round-trip.
        let w = Wrapped {
            command: command(),
            n: 3,
        };
        assert_eq!(decode::<Wrapped>(&encode(&w).unwrap()).unwrap(), w);
    }

    #[test]
    fn as_json_is_transparent_in_json() {
        let w = Wrapped {
            command: command(),
            n: 3,
        };
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["command"]["op"], "create_group");
        assert_eq!(serde_json::from_value::<Wrapped>(json).unwrap(), w);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&1u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        ));
    }
}
