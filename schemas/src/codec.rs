//! Avro single-object encoding: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the writer
//! schema (little-endian), then the datum.

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::{from_avro_datum, write_avro_datum_ref, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = MAGIC.len() + 8;
/// Bytes reserved for a datum up front; most records are a few hundred bytes.
const ENCODED_CAPACITY_HINT: usize = 512;

/// Errors from encoding or decoding a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The bytes do not start with the Avro single-object marker `C3 01`.
    #[error("value is not Avro single-object encoded (expected marker C3 01 and an 8-byte schema fingerprint)")]
    NotSingleObject,
    /// The writer schema's fingerprint is not one of the known versions of this record type.
    #[error("{record} written with unknown schema fingerprint {fingerprint}; known versions are in schemas/avro/history")]
    UnknownSchema {
        record: &'static str,
        fingerprint: String,
    },
    /// The datum does not match its writer schema, or the value does not fit the reader type.
    #[error("invalid {record} record")]
    Avro {
        record: &'static str,
        #[source]
        source: Box<apache_avro::Error>,
    },
}

/// A record type with an Avro schema: the current version and every released one.
pub trait Contract: Serialize + DeserializeOwned {
    /// Record name, used in error messages.
    const NAME: &'static str;

    /// Current and historical schemas of this record type.
    fn schemas() -> &'static SchemaSet;
}

/// The versions of one record type's schema.
pub struct SchemaSet {
    name: &'static str,
    current: Schema,
    current_fingerprint: [u8; 8],
    history: Vec<([u8; 8], Schema)>,
}

impl SchemaSet {
    /// Parses the current schema and every released version.
    ///
    /// Panics when a schema embedded at build time does not parse: that is a defect of this
    /// crate that the tests catch, not a runtime condition.
    pub fn parse(name: &'static str, current: &str, history: &[&str]) -> SchemaSet {
        let parse = |text: &str| Schema::parse_str(text).expect("embedded Avro schema parses");
        let current = parse(current);
        let current_fingerprint = fingerprint(&current);
        let history = history
            .iter()
            .map(|text| {
                let schema = parse(text);
                (fingerprint(&schema), schema)
            })
            .collect();
        SchemaSet {
            name,
            current,
            current_fingerprint,
            history,
        }
    }

    /// Returns the schema this build writes with.
    pub fn current(&self) -> &Schema {
        &self.current
    }

    /// Every released version, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Schema> {
        self.history.iter().map(|(_, schema)| schema)
    }

    /// Checks that the current schema is released and can read every released version.
    pub fn check_backward_compatible(&self) -> Result<(), String> {
        if !self
            .history
            .iter()
            .any(|(print, _)| *print == self.current_fingerprint)
        {
            return Err(format!(
                "the current {} schema is not in schemas/avro/history; copy it there as a new version",
                self.name
            ));
        }
        for (index, (_, old)) in self.history.iter().enumerate() {
            SchemaCompatibility::can_read(old, &self.current).map_err(|error| {
                format!(
                    "the current {} schema cannot read records written with version {}: {error}",
                    self.name,
                    index + 1
                )
            })?;
        }
        Ok(())
    }

    fn writer_schema(&self, print: &[u8]) -> Option<&Schema> {
        if print == self.current_fingerprint {
            return Some(&self.current);
        }
        self.history
            .iter()
            .find(|(known, _)| known == print)
            .map(|(_, schema)| schema)
    }
}

fn fingerprint(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut print = [0u8; 8];
    print.copy_from_slice(&bytes[..8]);
    print
}

/// Encodes a record with the current schema in single-object encoding.
///
/// The record is serialized straight into the output against the schema, without building
/// an intermediate `apache_avro::Value` and resolving it, which cost about as much again as
/// the encoding itself.
pub fn encode<T: Contract>(record: &T) -> Result<Vec<u8>, SchemaError> {
    let set = T::schemas();
    let mut bytes = Vec::with_capacity(HEADER_LEN + ENCODED_CAPACITY_HINT);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&set.current_fingerprint);
    write_avro_datum_ref(&set.current, record, &mut bytes).map_err(|source| SchemaError::Avro {
        record: T::NAME,
        source: Box::new(source),
    })?;
    Ok(bytes)
}

/// Decodes a single-object encoded record written with any known version of its schema.
pub fn decode<T: Contract>(bytes: &[u8]) -> Result<T, SchemaError> {
    let set = T::schemas();
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(SchemaError::NotSingleObject);
    }
    let print = &bytes[2..HEADER_LEN];
    let writer = set
        .writer_schema(print)
        .ok_or_else(|| SchemaError::UnknownSchema {
            record: T::NAME,
            fingerprint: print.iter().map(|byte| format!("{byte:02x}")).collect(),
        })?;

    let avro_error = |source| SchemaError::Avro {
        record: T::NAME,
        source: Box::new(source),
    };
    // A record written with the current schema needs no resolution against it.
    let reader = (print != set.current_fingerprint).then_some(&set.current);
    let mut datum = &bytes[HEADER_LEN..];
    let value = from_avro_datum(writer, &mut datum, reader).map_err(avro_error)?;
    apache_avro::from_value(&value).map_err(avro_error)
}

macro_rules! contract {
    ($type:ty, $name:literal, $file:literal, [$($version:literal),+]) => {
        impl Contract for $type {
            const NAME: &'static str = $name;

            fn schemas() -> &'static SchemaSet {
                static SET: LazyLock<SchemaSet> = LazyLock::new(|| {
                    SchemaSet::parse(
                        $name,
                        include_str!(concat!("../avro/", $file, ".avsc")),
                        &[$(include_str!(concat!("../avro/history/", $file, ".v", $version, ".avsc"))),+],
                    )
                });
                &SET
            }
        }
    };
}

contract!(crate::Event, "event", "event", ["1", "2"]);
contract!(
    crate::Subscription,
    "subscription",
    "subscription",
    ["1", "2", "3", "4"]
);
contract!(crate::Delivery, "delivery", "delivery", ["1"]);
contract!(crate::Attempt, "attempt", "attempt", ["1", "2"]);
contract!(crate::Tenant, "tenant", "tenant", ["1"]);
contract!(
    crate::IdempotentResponse,
    "idempotent response",
    "idempotency",
    ["1"]
);
contract!(crate::Quarantined, "quarantined", "quarantined", ["1"]);
contract!(crate::Operation, "operation", "operation", ["1"]);
