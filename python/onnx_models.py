"""Networks that are not in privlin's zoo, written as a PyTorch user would, exported to ONNX for
`privlin import`, with onnxruntime's logits on a fixed input as the reference.

    python onnx_models.py --out DIR [--width 8] [--input-size 32] [--batch 4]

writes, for each of `tv_resnet18` (torchvision's ResNet-18 layout: 7x7 stride-2 stem, 3x3
max-pool, basic blocks), `mobilenet_v2` (inverted residuals: 1x1 expansion, 3x3 depthwise,
ReLU6, linear bottleneck) and `concat_cnn` (two branches concatenated along channels, average
pooling, a MatMul + Add classifier behind a Reshape) and `plain_cnn` (the operations the
private-inference engine runs), `NAME.onnx` and `NAME.ref.safetensors`
(`input`, `logits` from onnxruntime). Batch norms get random statistics so that they matter.
"""

import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from export_onnx import export


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class TvResNet18(nn.Module):
    """torchvision.models.resnet18's layout at base width `w` (64 in torchvision)."""

    def __init__(self, w=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], w
        for i, c in enumerate([w, 2 * w, 4 * w, 8 * w]):
            s = 1 if i == 0 else 2
            layers.append(nn.Sequential(Basic(cin, c, s), Basic(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        h = cin * t
        self.res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2's blocks (t, c, n, s) scaled down; CIFAR stem of stride 1."""

    def __init__(self, w=8, classes=10):
        super().__init__()
        cfg = [(1, w, 1, 1), (6, int(1.5 * w), 2, 2), (6, 2 * w, 2, 2), (6, 4 * w, 1, 2)]
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU6(inplace=True))
        blocks, cin = [], w
        for t, c, n, s in cfg:
            for i in range(n):
                blocks.append(Inverted(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, 8 * w, 1, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU6(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ConcatCNN(nn.Module):
    """Two branches concatenated along channels, average pooling, a MatMul + Add classifier."""

    def __init__(self, w=8, classes=10, size=32):
        super().__init__()
        self.a = nn.Conv2d(3, w, 3, 1, 1)
        self.b = nn.Conv2d(3, w, 5, 1, 2)
        self.bn = nn.BatchNorm2d(2 * w)
        self.c = nn.Conv2d(2 * w, 2 * w, 3, 2, 1)
        self.pool = nn.AvgPool2d(2, 2)
        feats = 2 * w * (size // 4) ** 2
        self.weight = nn.Parameter(torch.randn(feats, classes) / feats**0.5)
        self.bias = nn.Parameter(torch.randn(classes) * 0.1)

    def forward(self, x):
        x = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 1)
        x = self.pool(F.relu(self.c(self.bn(x))))
        x = x.reshape(x.size(0), -1)
        return x @ self.weight + self.bias


class PlainCNN(nn.Module):
    """What the private-inference engine runs today: conv (bias, batch norm), ReLU, a residual
    addition, a 2x2 max-pool, global average pooling and a linear classifier."""

    def __init__(self, w=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, w, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * w)
        self.fc = nn.Linear(2 * w, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(x + self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(self.pool(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


MODELS = {"tv_resnet18": TvResNet18, "mobilenet_v2": MobileNetV2, "concat_cnn": ConcatCNN, "plain_cnn": PlainCNN}


def build(name, width, classes, size):
    if name == "concat_cnn":
        return MODELS[name](width, classes, size)
    return MODELS[name](width, classes)


def main():
    import onnxruntime as ort
    from safetensors.numpy import save_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-batchnorm", action="store_true", help="keep every model's batch norms (to train after import)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    x = torch.randn(a.batch, 3, a.input_size, a.input_size)
    for name in a.models.split(","):
        m = build(name, a.width, a.classes, a.input_size)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.2, 0.2)
                    mod.running_var.uniform_(0.5, 1.5)
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
        path = os.path.join(a.out, name + ".onnx")
        # The ResNet keeps its batch norms (privlin trains them and folds them at export); the
        # others are exported as PyTorch does by default, batch norms folded into convolutions.
        export(m, a.input_size, path, keep_batchnorm=a.keep_batchnorm or name in ("tv_resnet18", "plain_cnn"))
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (logits,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            torch_logits = m.eval()(x).numpy()
        assert np.abs(logits - torch_logits).max() < 1e-3, f"{name}: onnxruntime and PyTorch disagree"
        save_file({"input": x.numpy(), "logits": logits}, os.path.join(a.out, name + ".ref.safetensors"))
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
