//! Graphs the importer must refuse, each with one error naming the node (built with the
//! generated protobuf types, no Python).

use privlin_onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value, tensor_shape_proto::Dimension,
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use privlin_onnx::{import, Error};
use prost::Message;

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: vec![0.5; n as usize],
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, opset: i64) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![value("x", &[1, 3, 8, 8])],
            output: vec![value("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// conv (3 -> 4) -> relu -> global pool -> flatten -> gemm (4 -> 4).
fn good() -> (Vec<NodeProto>, Vec<TensorProto>) {
    (
        vec![
            node("Conv", "conv", &["x", "w"], "c"),
            node("Relu", "act", &["c"], "r"),
            node("GlobalAveragePool", "gap", &["r"], "p"),
            node("Flatten", "flat", &["p"], "f"),
            node("Gemm", "fc", &["f", "fw"], "y"),
        ],
        vec![weight("w", &[4, 3, 3, 3]), weight("fw", &[4, 4])],
    )
}

#[test]
fn a_good_graph_imports() {
    let (n, i) = good();
    let m = import(&model(n, i, 17)).unwrap();
    assert_eq!(m.graph.sites().count(), 1);
    assert_eq!(m.graph.classes(), 4);
    assert_eq!(m.graph.nodes[0].shape, vec![4, 6, 6]);
}

#[test]
fn refusals_name_the_node() {
    // A cycle: the relu reads the gemm's output and the chain leads back to it.
    let (mut n, i) = good();
    n[1].input = vec!["y".into()];
    n[2].input = vec!["r".into()];
    n[4].input = vec!["f".into(), "fw".into()];
    n[0].output = vec!["c".into()];
    let e = import(&model(n, i.clone(), 17)).unwrap_err();
    assert!(matches!(e, Error::Cycle { .. }), "{e}");
    // A value nobody writes.
    let (mut n, i) = good();
    n[1].input = vec!["nowhere".into()];
    let e = import(&model(n, i, 17)).unwrap_err();
    assert!(e.to_string().contains("node `act` reads `nowhere`"), "{e}");
    // Shapes that do not agree: a classifier reading 5 features from 4 channels.
    let (n, mut i) = good();
    i[1] = weight("fw", &[4, 5]);
    let e = import(&model(n, i, 17)).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { node, .. } if node == "fc"),
        "{e}"
    );
    // An unsupported operation.
    let (mut n, i) = good();
    n[1].op_type = Some("Sigmoid".into());
    let e = import(&model(n, i, 17)).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { node, op } if node == "act" && op == "Sigmoid"),
        "{e}"
    );
    // An old opset.
    let (n, i) = good();
    let e = import(&model(n, i, 11)).unwrap_err();
    assert!(e.to_string().contains("opset 11"), "{e}");
    // A truncated file: the weights hold fewer values than their shape says, or the bytes end
    // inside a field.
    let (n, mut i) = good();
    i[0].float_data.truncate(10);
    let e = import(&model(n, i, 17)).unwrap_err();
    assert!(
        e.to_string().contains("`w`") && e.to_string().contains("truncated"),
        "{e}"
    );
    let (n, i) = good();
    let bytes = model(n, i, 17);
    assert!(import(&bytes[..bytes.len() - 7]).is_err());
    // Clip other than (0, 6) or (0, inf).
    let (mut n, mut i) = good();
    n[1] = node("Clip", "clip", &["c", "lo", "hi"], "r");
    i.push(TensorProto {
        dims: vec![],
        ..weight("lo", &[])
    });
    i.push(weight("hi", &[]));
    let e = import(&model(n, i, 17)).unwrap_err();
    assert!(e.to_string().contains("Clip(0.5, 0.5)"), "{e}");
}
