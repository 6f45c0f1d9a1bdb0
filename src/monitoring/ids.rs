//! Prediction ids: server-made UUIDs (version 7), one per answered instance. The
//! first 48 bits are the answer's millisecond, so feedback for an id can tell
//! which log segments may hold it, and whether it is older than the log keeps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::{Builder, Uuid};

use super::item_error::BadPredictionId;

/// One instance's prediction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PredictionId(Uuid);

impl PredictionId {
    /// `n` fresh ids for instances answered at `t_ms`.
    pub fn batch(t_ms: u64, n: usize) -> Vec<Self> {
        (0..n)
            .map(|_| {
                let random = *Uuid::new_v4().as_bytes();
                let mut tail = [0u8; 10];
                tail.copy_from_slice(&random[..10]);
                Self(Builder::from_unix_timestamp_millis(t_ms, &tail).into_uuid())
            })
            .collect()
    }

    /// The millisecond the id was made in.
    pub fn t_ms(&self) -> u64 {
        let b = self.0.as_bytes();
        b[..6]
            .iter()
            .fold(0, |acc, byte| (acc << 8) | u64::from(*byte))
    }
}

impl fmt::Display for PredictionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Only ids this server could have made: version 7 UUIDs.
impl FromStr for PredictionId {
    type Err = BadPredictionId;
    fn from_str(s: &str) -> Result<Self, BadPredictionId> {
        // Quoted back at most in part: the text is the client's.
        let id =
            Uuid::try_parse(s).map_err(|_| BadPredictionId::NotUuid(BadPredictionId::shown(s)))?;
        let version = id.get_version_num();
        if version != 7 {
            return Err(BadPredictionId::NotKilns {
                shown: BadPredictionId::shown(s),
                version,
            });
        }
        Ok(Self(id))
    }
}

impl Serialize for PredictionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PredictionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_millisecond_and_round_trip() {
        let ids = PredictionId::batch(1_795_000_000_123, 3);
        assert_eq!(ids.len(), 3);
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            assert_eq!(id.t_ms(), 1_795_000_000_123);
            let text = id.to_string();
            assert_eq!(text.parse::<PredictionId>().unwrap(), *id);
        }
        assert_eq!(
            "not-an-id".parse::<PredictionId>(),
            Err(BadPredictionId::NotUuid("not-an-id".into()))
        );
        let v4 = Uuid::new_v4().to_string();
        assert!(matches!(
            v4.parse::<PredictionId>(),
            Err(BadPredictionId::NotKilns { version: 4, .. })
        ));
    }
}
