//! Outcomes as versions before typed refusals stored them (the applied-ids
//! table, snapshots), so a data dir written by such a version still opens.
//!
//! Then a refusal was kept as its text (code, message, field); now it is
//! the model's error. The text cannot be turned back into the error, so a
//! row holding an old refusal is read as "applied, outcome unknown": the
//! state machine forgets its outcome, and a re-send of that request is
//! applied once more — refused or applied by the state it meets (the first
//! attempt changed nothing).

use serde::Deserialize;
use sluice_model::{Applied, State};

use crate::codec::{decode, CodecError};
use crate::types::{Outcome, RequestId};

/// [`Outcome`] as stored before refusals were typed.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) enum LegacyOutcome {
    /// Same as [`Outcome::Applied`].
    Applied {
        #[serde(with = "crate::codec::as_json")]
        applied: Applied,
        #[serde(with = "crate::codec::as_json")]
        excerpt: Option<State>,
    },
    /// A refusal, as text.
    Rejected {
        code: String,
        message: String,
        field: Option<String>,
    },
}

impl LegacyOutcome {
    /// The outcome as kept now; `None` for a refusal (see the module doc).
    pub(crate) fn upgrade(self) -> Option<Outcome> {
        match self {
            LegacyOutcome::Applied { applied, excerpt } => {
                Some(Outcome::Applied { applied, excerpt })
            }
            LegacyOutcome::Rejected {
                code,
                message,
                field,
            } => {
                tracing::debug!(
                    code,
                    message,
                    ?field,
                    "an old refusal's outcome is forgotten"
                );
                None
            }
        }
    }
}

/// Decodes one stored `(id, outcome)` row, as written now or before typed
/// refusals (its outcome `None` then when it was a refusal).
pub(crate) fn decode_row(bytes: &[u8]) -> Result<(RequestId, Option<Outcome>), CodecError> {
    match decode::<(RequestId, Outcome)>(bytes) {
        Ok((id, outcome)) => Ok((id, Some(outcome))),
        Err(e) => match decode::<(RequestId, LegacyOutcome)>(bytes) {
            Ok((id, old)) => Ok((id, old.upgrade())),
            Err(_) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use sluice_model::{DrainId, ModelError};

    fn id(seq: u64) -> RequestId {
        RequestId {
            node: 1,
            boot: 7,
            seq,
        }
    }

    #[test]
    fn rows_of_both_versions_decode() {
        let now = Outcome::from(ModelError::DrainNotFound { drain: DrainId(3) });
        let row = encode(&(id(1), now.clone())).unwrap();
        assert_eq!(decode_row(&row).unwrap(), (id(1), Some(now)));

        let applied = LegacyOutcome::Applied {
            applied: Applied::DrainCompleted { drain: DrainId(3) },
            excerpt: Some(State::default()),
        };
        let row = encode(&(id(2), applied)).unwrap();
        assert_eq!(
            decode_row(&row).unwrap(),
            (
                id(2),
                Some(Outcome::Applied {
                    applied: Applied::DrainCompleted { drain: DrainId(3) },
                    excerpt: Some(State::default()),
                })
            )
        );

        let refused = LegacyOutcome::Rejected {
            code: "drain_not_found".into(),
            message: "drain d3 does not exist".into(),
            field: Some("drain".into()),
        };
        let row = encode(&(id(3), refused)).unwrap();
        assert_eq!(decode_row(&row).unwrap(), (id(3), None));
    }
}
