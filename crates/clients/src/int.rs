//! Reads a JSON integer that protobuf JSON may send as a string (int64 and
//! uint64 fields, lnrpc's REST mapping) or as a number (int32/uint32).
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Num(u64),
    Neg(i64),
    Str(String),
}

pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Num(n) => Ok(n),
        // A negative balance is not a thing; read it as 0.
        Raw::Neg(n) => Ok(n.max(0) as u64),
        Raw::Str(s) => s
            .parse::<u64>()
            .or_else(|_| s.parse::<i64>().map(|n| n.max(0) as u64))
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer"))),
    }
}
