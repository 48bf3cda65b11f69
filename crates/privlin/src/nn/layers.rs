//! Weight layers that report their MACs to a tracing [`Forward`] pass.

use super::forward::{Forward, LayerKind};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Dotted PyTorch-style module path of a `tch` var-store path.
pub fn path_name(p: &nn::Path) -> String {
    p.components().collect::<Vec<_>>().join(".")
}

#[derive(Debug)]
pub struct Conv {
    name: String,
    inner: nn::Conv2D,
    cin: i64,
    k: i64,
    stride: i64,
    padding: i64,
}

impl Conv {
    /// A `k x k` convolution without bias (every conv here is followed by batch norm).
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride,
            padding,
            bias: false,
            ..Default::default()
        };
        Conv {
            name: path_name(&p),
            inner: nn::conv2d(p, cin, cout, k, cfg),
            cin,
            k,
            stride,
            padding,
        }
    }

    /// Module path, stride and padding (for exports).
    pub fn describe(&self) -> (&str, i64, i64) {
        (&self.name, self.stride, self.padding)
    }

    /// This convolution (no batch norm after it) as a node of an exported graph.
    pub fn node(&self, input: usize) -> super::GraphNode {
        super::GraphNode::Conv {
            input,
            conv: self.name.clone(),
            stride: self.stride,
            padding: self.padding,
        }
    }

    pub fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let y = self.inner.forward(x);
        if f.tracing() {
            let s = y.size();
            let macs = s[1] * s[2] * s[3] * self.cin * self.k * self.k;
            f.record_layer(&self.name, LayerKind::Conv, &y, macs);
        }
        y
    }
}

#[derive(Debug)]
pub struct BatchNorm {
    pub name: String,
    inner: nn::BatchNorm,
}

impl BatchNorm {
    /// BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1).
    pub fn new(p: nn::Path, c: i64) -> Self {
        BatchNorm {
            name: path_name(&p),
            inner: nn::batch_norm2d(p, c, Default::default()),
        }
    }

    pub fn forward(&self, x: &Tensor, f: &Forward) -> Tensor {
        self.inner.forward_t(x, f.train)
    }

    /// This batch norm on its own as a node of an exported graph.
    pub fn node(&self, input: usize) -> super::GraphNode {
        super::GraphNode::BatchNorm {
            input,
            bn: self.name.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Linear {
    name: String,
    inner: nn::Linear,
    cin: i64,
    cout: i64,
}

impl Linear {
    pub fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        Linear {
            name: path_name(&p),
            inner: nn::linear(p, cin, cout, Default::default()),
            cin,
            cout,
        }
    }

    /// Module path, inputs and outputs.
    pub fn describe(&self) -> (&str, i64, i64) {
        (&self.name, self.cin, self.cout)
    }

    pub fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let y = self.inner.forward(x);
        if f.tracing() {
            f.record_layer(&self.name, LayerKind::Linear, &y, self.cin * self.cout);
        }
        y
    }
}

/// Conv -> BN, the unit most blocks are made of.
#[derive(Debug)]
pub struct ConvBn {
    pub conv: Conv,
    pub bn: BatchNorm,
}

impl ConvBn {
    pub fn new(conv: nn::Path, bn: nn::Path, cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        ConvBn {
            conv: Conv::new(conv, cin, cout, k, stride, k / 2),
            bn: BatchNorm::new(bn, cout),
        }
    }

    pub fn forward(&self, x: &Tensor, f: &mut Forward) -> Tensor {
        let y = self.conv.forward(x, f);
        self.bn.forward(&y, f)
    }

    /// This unit as a node of an exported graph.
    pub fn node(&self, input: usize) -> super::GraphNode {
        let (name, stride, padding) = self.conv.describe();
        super::GraphNode::ConvBn {
            input,
            conv: name.to_string(),
            bn: self.bn.name.clone(),
            stride,
            padding,
        }
    }
}

/// Global average pooling and flattening to `(N, C)`.
pub fn global_avg_pool(x: &Tensor) -> Tensor {
    x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

/// The same 4-D tensor with channels-last (NHWC) strides: libtorch recognises the layout and picks
/// its channels-last kernels (tch exposes no memory-format argument, so it is built by permuting).
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}
