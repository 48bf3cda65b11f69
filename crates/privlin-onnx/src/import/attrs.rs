//! A node's attributes, with ONNX's defaults and 2-D checks.

use crate::error::{Error, Result};
use crate::proto;

/// Attributes of one node.
pub(super) struct Attrs<'a> {
    pub(super) node: &'a str,
    pub(super) list: &'a [proto::AttributeProto],
}

impl Attrs<'_> {
    pub(super) fn get(&self, name: &str) -> Option<&proto::AttributeProto> {
        self.list.iter().find(|a| a.name() == name)
    }
    pub(super) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map(|a| a.i()).unwrap_or(default)
    }
    pub(super) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map(|a| a.f()).unwrap_or(default)
    }
    pub(super) fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(a.s()).into_owned())
    }
    pub(super) fn err(&self, msg: impl Into<String>) -> Error {
        Error::Attribute {
            node: self.node.to_string(),
            msg: msg.into(),
        }
    }
    pub(super) fn pair(&self, name: &str, default: i64) -> Result<[i64; 2]> {
        match self.ints(name) {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 => Ok([v[0], v[1]]),
            Some(v) => Err(self.err(format!(
                "`{name}` = {v:?}: privlin reads 2-D operations only"
            ))),
        }
    }
    pub(super) fn pads(&self) -> Result<[i64; 4]> {
        match self.ints("pads") {
            None => Ok([0; 4]),
            Some(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
            Some(v) => Err(self.err(format!("`pads` = {v:?}: expected four values (2-D)"))),
        }
    }
    /// `auto_pad` resolved to explicit pads for a window of `kernel` (dilated) on `hw`.
    pub(super) fn resolve_pads(
        &self,
        hw: [i64; 2],
        kernel: [i64; 2],
        stride: [i64; 2],
        dil: [i64; 2],
    ) -> Result<[i64; 4]> {
        let mode = self.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        match mode.as_str() {
            "NOTSET" | "" => self.pads(),
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0i64; 4];
                for d in 0..2 {
                    let out = (hw[d] + stride[d] - 1) / stride[d];
                    let total =
                        ((out - 1) * stride[d] + dil[d] * (kernel[d] - 1) + 1 - hw[d]).max(0);
                    let (small, big) = (total / 2, total - total / 2);
                    if mode == "SAME_UPPER" {
                        p[d] = small;
                        p[d + 2] = big;
                    } else {
                        p[d] = big;
                        p[d + 2] = small;
                    }
                }
                Ok(p)
            }
            other => Err(self.err(format!("auto_pad = {other} is not an ONNX value"))),
        }
    }
}
