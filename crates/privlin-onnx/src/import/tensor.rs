//! Initializers and constants: ONNX tensors read as float32 or int64 values.

use crate::error::{Error, Result};
use crate::ir::TensorData;
use crate::proto;

/// The batch size in shape arithmetic (a value no real dimension takes).
pub(super) const BATCH: i64 = i64::MIN + 7;

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

#[derive(Debug, Clone)]
pub(super) enum Const {
    F32(TensorData),
    I64(Vec<i64>, Vec<i64>),
}

impl Const {
    pub(super) fn shape(&self) -> &[i64] {
        match self {
            Const::F32(t) => &t.shape,
            Const::I64(s, _) => s,
        }
    }
    pub(super) fn floats(&self) -> Vec<f32> {
        match self {
            Const::F32(t) => t.data.clone(),
            Const::I64(_, v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

pub(super) fn tensor_const(t: &proto::TensorProto, what: &str) -> Result<Const> {
    let name = t.name();
    if t.data_location() == proto::tensor_proto::DataLocation::External {
        return Err(Error::Model(format!(
            "{what} `{name}` keeps its data in an external file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"
        )));
    }
    let shape = t.dims.clone();
    let n: i64 = shape.iter().product();
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let c = match t.data_type() {
        FLOAT => {
            let v: Vec<f32> = match raw {
                Some(r) => r.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                None => t.float_data.clone(),
            };
            Const::F32(TensorData { shape, data: v })
        }
        DOUBLE => {
            let v: Vec<f32> = match raw {
                Some(r) => r
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                None => t.double_data.iter().map(|&x| x as f32).collect(),
            };
            Const::F32(TensorData { shape, data: v })
        }
        INT64 => {
            let v: Vec<i64> = match raw {
                Some(r) => r.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect(),
                None => t.int64_data.clone(),
            };
            Const::I64(shape, v)
        }
        INT32 => {
            let v: Vec<i64> = match raw {
                Some(r) => r.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64).collect(),
                None => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            Const::I64(shape, v)
        }
        other => {
            return Err(Error::Model(format!(
                "{what} `{name}` has ONNX data type {other}; privlin reads float32, float64, int32 and int64 tensors"
            )))
        }
    };
    let got = match &c {
        Const::F32(t) => t.data.len(),
        Const::I64(_, v) => v.len(),
    };
    if got as i64 != n {
        return Err(Error::Model(format!(
            "{what} `{name}` of shape {:?} holds {got} values, expected {n} (truncated file?)",
            c.shape()
        )));
    }
    Ok(c)
}

/// A matrix transposed (Gemm without transB, MatMul: privlin keeps weights as (out, in)).
pub(super) fn transpose(t: &TensorData) -> TensorData {
    let (r, c) = (t.shape[0] as usize, t.shape[1] as usize);
    let mut data = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    TensorData::new(vec![c as i64, r as i64], data)
}
