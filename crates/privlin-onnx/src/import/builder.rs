//! The graph under construction: constants, activation shapes, aliases and claimed parameters.

use super::names::{node_name, sanitize};
use super::tensor::Const;
use crate::error::{Error, Result};
use crate::ir::{infer, Node, Op, Param, Role, TensorData};
use std::collections::{HashMap, HashSet};

pub(super) struct Builder {
    pub(super) consts: HashMap<String, Const>,
    /// Activation values: name -> shape.
    pub(super) shapes: HashMap<String, Vec<i64>>,
    /// A value that is another one (Identity, Dropout, a folded bias Add).
    pub(super) alias: HashMap<String, String>,
    pub(super) nodes: Vec<Node>,
    pub(super) params: Vec<Param>,
    pub(super) tensors: Vec<(String, TensorData)>,
    pub(super) claimed: HashSet<String>,
    pub(super) node_names: HashSet<String>,
    /// How many nodes read each (raw) value.
    pub(super) readers: HashMap<String, usize>,
}

impl Builder {
    pub(super) fn resolve<'a>(&'a self, v: &'a str) -> &'a str {
        let mut v = v;
        while let Some(a) = self.alias.get(v) {
            v = a;
        }
        v
    }

    /// Register `data` as a parameter named after `name` (renamed when taken: one parameter per
    /// node that reads it, so tied or deduplicated initializers train apart).
    pub(super) fn claim(&mut self, name: &str, data: TensorData, role: Role) -> String {
        let base = sanitize(name);
        let mut n = base.clone();
        let mut k = 1;
        while !self.claimed.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        self.params.push(Param {
            name: n.clone(),
            shape: data.shape.clone(),
            role,
        });
        self.tensors.push((n.clone(), data));
        n
    }

    pub(super) fn unique_node_name(&mut self, raw: &str, op: &str) -> String {
        let base = node_name(raw, op);
        let mut n = base.clone();
        let mut k = 1;
        while !self.node_names.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    }

    pub(super) fn constant(&self, v: &str, node: &str) -> Result<&Const> {
        let v = self.resolve(v);
        self.consts.get(v).ok_or_else(|| Error::Attribute {
            node: node.into(),
            msg: format!("input `{v}` must be a constant (an initializer); privlin does not compute weights at run time"),
        })
    }

    pub(super) fn activation(&self, v: &str, node: &str) -> Result<(String, Vec<i64>)> {
        let r = self.resolve(v);
        match self.shapes.get(r) {
            Some(s) => Ok((r.to_string(), s.clone())),
            None if self.consts.contains_key(r) => Err(Error::Attribute {
                node: node.into(),
                msg: format!("input `{r}` is a constant where privlin expects an activation (constant folding of activations is not supported)"),
            }),
            None => Err(Error::Missing {
                node: node.into(),
                value: v.into(),
            }),
        }
    }

    pub(super) fn push(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<(String, Vec<i64>)>,
        output: &str,
    ) -> Result<()> {
        let param_shapes: HashMap<String, Vec<i64>> = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        let refs: Vec<&[i64]> = inputs.iter().map(|(_, s)| s.as_slice()).collect();
        let shape =
            infer(&op, &refs, &|p| param_shapes.get(p).cloned()).map_err(|msg| Error::Shape {
                node: name.clone(),
                msg,
            })?;
        self.shapes.insert(output.to_string(), shape.clone());
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.into_iter().map(|(n, _)| n).collect(),
            output: output.to_string(),
            shape,
        });
        Ok(())
    }
}
