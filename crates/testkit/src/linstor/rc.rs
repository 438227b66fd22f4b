//! `ApiCallRc` entries as the LINSTOR controller builds them: signed 64-bit return codes whose
//! top two bits are the type (error, warning, info), with operation and object bits and a 15-bit
//! code (see `shared/upstream/linstor/NOTES.md`).

use serde_json::{Value, json};

/// Type bits: error.
pub const MASK_ERROR: u64 = 0xC000_0000_0000_0000;
/// Type bits: warning.
pub const MASK_WARN: u64 = 0x8000_0000_0000_0000;
/// Type bits: info.
pub const MASK_INFO: u64 = 0x4000_0000_0000_0000;
/// Operation bits: create.
pub const MASK_CRT: u64 = 0x0100_0000;
/// Operation bits: modify.
pub const MASK_MOD: u64 = 0x0200_0000;
/// Operation bits: delete.
pub const MASK_DEL: u64 = 0x0300_0000;
/// Object bits: resource definition.
pub const MASK_RSC_DFN: u64 = 0x38_0000;
/// Object bits: resource.
pub const MASK_RSC: u64 = 0x34_0000;
/// Object bits: volume definition.
pub const MASK_VLM_DFN: u64 = 0x30_0000;
/// Object bits: resource group.
pub const MASK_RSC_GRP: u64 = 0x44_0000;
/// Object bits: snapshot.
pub const MASK_SNAPSHOT: u64 = 0x0C_0000;

/// Success codes.
pub const CREATED: u64 = 1;
/// Success codes.
pub const DELETED: u64 = 2;
/// Success codes.
pub const MODIFIED: u64 = 3;
/// `FAIL_INVLD_VLM_SIZE`.
pub const FAIL_INVLD_VLM_SIZE: u64 = 206;
/// `FAIL_INVLD_PLACE_COUNT`.
pub const FAIL_INVLD_PLACE_COUNT: u64 = 219;
/// `FAIL_NOT_FOUND_RSC_DFN`.
pub const FAIL_NOT_FOUND_RSC_DFN: u64 = 301;
/// `FAIL_NOT_FOUND_VLM_DFN`.
pub const FAIL_NOT_FOUND_VLM_DFN: u64 = 303;
/// `FAIL_NOT_FOUND_SNAPSHOT_DFN`.
pub const FAIL_NOT_FOUND_SNAPSHOT_DFN: u64 = 313;
/// `FAIL_NOT_FOUND_RSC_GRP`.
pub const FAIL_NOT_FOUND_RSC_GRP: u64 = 317;
/// `FAIL_EXISTS_RSC_DFN`.
pub const FAIL_EXISTS_RSC_DFN: u64 = 501;
/// `FAIL_EXISTS_RSC`.
pub const FAIL_EXISTS_RSC: u64 = 502;
/// `FAIL_EXISTS_VLM_DFN`.
pub const FAIL_EXISTS_VLM_DFN: u64 = 503;
/// `FAIL_EXISTS_SNAPSHOT_DFN`.
pub const FAIL_EXISTS_SNAPSHOT_DFN: u64 = 514;
/// `FAIL_EXISTS_RSC_GRP`.
pub const FAIL_EXISTS_RSC_GRP: u64 = 522;
/// `FAIL_NOT_ENOUGH_FREE_SPACE`.
pub const FAIL_NOT_ENOUGH_FREE_SPACE: u64 = 980;
/// `FAIL_NOT_ENOUGH_NODES`.
pub const FAIL_NOT_ENOUGH_NODES: u64 = 996;
/// `FAIL_IN_USE`.
pub const FAIL_IN_USE: u64 = 997;
/// `FAIL_UNKNOWN_ERROR`.
pub const FAIL_UNKNOWN_ERROR: u64 = 998;
/// `INFO_TIE_BREAKER_CREATED`.
pub const INFO_TIE_BREAKER_CREATED: u64 = 10003;

/// The signed wire value of `bits`.
pub fn wire(bits: u64) -> i64 {
    bits as i64
}

/// One entry.
pub fn entry(bits: u64, message: impl Into<String>) -> Value {
    json!({"ret_code": wire(bits), "message": message.into()})
}

/// An error entry with cause and details.
pub fn error(bits: u64, message: impl Into<String>, cause: &str, details: &str) -> Value {
    let mut e = entry(MASK_ERROR | bits, message);
    if !cause.is_empty() {
        e["cause"] = json!(cause);
    }
    if !details.is_empty() {
        e["details"] = json!(details);
    }
    e
}

/// A success entry (type bits 00) for `op` on `obj`.
pub fn success(obj: u64, op: u64, code: u64, message: impl Into<String>) -> Value {
    entry(obj | op | code, message)
}

/// An info entry.
pub fn info(code: u64, message: impl Into<String>) -> Value {
    entry(MASK_INFO | code, message)
}

/// The HTTP status the controller answers for a list whose first error is `bits` (NOTES.md):
/// 300-399 → 404, 400-499 → 403, everything else 500.
pub fn http_status(bits: u64) -> u16 {
    match bits & 0x7FFF {
        300..=399 => 404,
        400..=499 => 403,
        _ => 500,
    }
}
