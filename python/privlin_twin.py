"""PyTorch twins of the privlin model zoo.

Module paths equal privlin's parameter names (``layer1.0.conv1.weight``), so a safetensors file
written by either side loads into the other. Every nonlinearity is a ``Site`` module that applies
``m * act(x) + (1 - m) * x`` (mask ``None``: plain activation), mirroring privlin's activation sites.
Used by the tests (same weights, same logits) and by the throughput benchmark.
"""

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F


class Site(nn.Module):
    def __init__(self, act="relu"):
        super().__init__()
        self.act = act
        self.mask = None

    def forward(self, x):
        if getattr(self, "removed", False):
            return x
        a = F.relu(x) if self.act == "relu" else F.silu(x)
        if self.mask is None:
            return a
        return x + self.mask * (a - x)


def ch(c, width):
    return max(1, int(round(c * width)))


class ConvBn(nn.Module):
    """Not used for naming: blocks hold conv/bn attributes directly."""


class ShallowBranch(nn.Module):
    """Gated branching's shallow branch (``gb.conv`` [+ ``gb.bn``]): no nonlinearity."""

    def __init__(self, cin, cout, k, stride, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout) if bn else None

    def forward(self, x):
        y = self.conv(x)
        return y if self.bn is None else self.bn(y)


class AuxHead(nn.Module):
    """The auxiliary classifier: conv-BN 3x3 stride 2, site ``aux.act1``, pooling, ``aux.fc``."""

    def __init__(self, cin, cout, classes, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act1 = Site(act)
        self.fc = nn.Linear(cout, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.act1(self.bn(self.conv(x))), 1), 1))


def _mix(block, x, main):
    """Main branch output, mixed with the shallow branch by the block's gate when it has one."""
    gb = getattr(block, "gb", None)
    if main is None:
        return gb(x)
    if gb is None:
        return main
    g = getattr(block, "gate", 1.0)
    return gb(x) * g + main * (1 - g)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, act):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = Site(act)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = Site(act)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, 0, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = None
        if hasattr(self, "conv1"):
            out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        out = _mix(self, x, out)
        sc = x if self.downsample is None else self.downsample(x)
        return self.act2(out + sc)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, act):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = Site(act)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = Site(act)
        self.conv3 = nn.Conv2d(planes, cout, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act3 = Site(act)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = None
        if hasattr(self, "conv1"):
            out = self.act1(self.bn1(self.conv1(x)))
            out = self.act2(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
        out = _mix(self, x, out)
        sc = x if self.downsample is None else self.downsample(x)
        return self.act3(out + sc)


class ResNet(nn.Module):
    """ResNet-18/34/50; with ``mults`` a HybReNet (stage widths m times the multipliers)."""

    def __init__(self, layers, bottleneck, width=1.0, act="relu", classes=10, mults=None, stem_stride=1):
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        base = ch(64, width)
        self.conv1 = nn.Conv2d(3, base, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.act1 = Site(act)
        cin = base
        for stage, n in enumerate(layers):
            planes = base * mults[stage] if mults else ch(64 << stage, width)
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(block(cin, planes, stride, act))
                cin = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        return _body_and_head(self, out, "layer", 4)


class Unit(nn.Module):
    def __init__(self, cin, cout, pool, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = Site(act)
        self.pool = pool

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return F.max_pool2d(y, 2) if self.pool else y


class ResNet9(nn.Module):
    def __init__(self, width=1.0, act="relu", classes=10):
        super().__init__()
        c1, c2, c3, c4 = (ch(c, width) for c in (64, 128, 256, 512))
        self.prep = Unit(3, c1, False, act)
        self.layer1 = Unit(c1, c2, True, act)
        self.res1 = nn.Sequential(Unit(c2, c2, False, act), Unit(c2, c2, False, act))
        self.layer2 = Unit(c2, c3, True, act)
        self.layer3 = Unit(c3, c4, True, act)
        self.res3 = nn.Sequential(Unit(c4, c4, False, act), Unit(c4, c4, False, act))
        self.fc = nn.Linear(c4, classes)

    def forward(self, x):
        x = self.layer1(self.prep(x))
        x = self.res1(x) + x
        x = self.layer3(self.layer2(x))
        x = self.res3(x) + x
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class Vgg(nn.Module):
    def __init__(self, name, width=1.0, act="relu", classes=10, input_size=32):
        super().__init__()
        layers, cin = [], 3
        for c in VGG_CFG[name]:
            if c == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                cout = ch(c, width)
                layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), Site(act)]
                cin = cout
        self.features = nn.Sequential(*layers)
        side = input_size // 32
        self.classifier = nn.Linear(cin * side * side, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride, act):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = Site(act)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = Site(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        pre = self.relu1(self.bn1(x))
        out = None
        if hasattr(self, "conv1"):
            out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        out = _mix(self, pre, out)
        return (x if self.equal else self.convShortcut(pre)) + out


class NetworkBlock(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layer = nn.Sequential(*layers)

    def forward(self, x):
        return self.layer(x)


class Wrn(nn.Module):
    def __init__(self, depth, k, width=1.0, act="relu", classes=10):
        super().__init__()
        n = (depth - 4) // 6
        widths = [ch(16, width), ch(16 * k, width), ch(32 * k, width), ch(64 * k, width)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        cin = widths[0]
        for stage in range(3):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(PreActBlock(cin, widths[stage + 1], stride, act))
                cin = widths[stage + 1]
            setattr(self, f"block{stage + 1}", NetworkBlock(blocks))
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu = Site(act)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return _body_and_head(self, self.conv1(x), "block", 3)

    def head(self, out):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1), 1))


def _body_and_head(model, out, prefix, stages):
    """Stages in order; the auxiliary classifier reads its stage's output and, when it serves the
    model, answers (the later stages are gone); otherwise its logits go to ``model.aux_logits``."""
    aux_after = getattr(model, "aux_after", None)
    feats = None
    for s in range(1, stages + 1):
        layer = getattr(model, f"{prefix}{s}", None)
        if layer is None:
            break
        out = layer(out)
        if aux_after == f"{prefix}{s}":
            feats = out
    if getattr(model, "aux_serve", False):
        return model.aux(feats)
    if feats is not None:
        model.aux_logits = model.aux(feats)
    if hasattr(model, "head"):
        return model.head(out)
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def _block_io(block):
    """(input channels, output channels, stride) of a residual block."""
    if isinstance(block, PreActBlock):
        return block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0]
    if isinstance(block, Bottleneck):
        return block.conv1.in_channels, block.conv3.out_channels, block.conv2.stride[0]
    return block.conv1.in_channels, block.conv2.out_channels, block.conv1.stride[0]


def apply_reshape(model, spec, act="relu"):
    """Gated and shallow blocks and the auxiliary classifier of a spec ("Making Models Shallow
    Again"), as privlin's nn/resnet.rs and nn/wrn.rs build them."""
    k = spec.get("shallow_kernel", 3)
    for name in spec.get("gated", []) + spec.get("shallow", []):
        block = model.get_submodule(name)
        cin, cout, stride = _block_io(block)
        block.gb = ShallowBranch(cin, cout, k, stride, bn=not isinstance(block, PreActBlock))
        block.gate = 1.0
        if name in spec.get("shallow", []):
            if isinstance(block, PreActBlock):
                drop = ["conv1", "bn2", "relu2", "conv2"]
            elif isinstance(block, Bottleneck):
                drop = ["conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3"]
            else:
                drop = ["conv1", "bn1", "act1", "conv2", "bn2"]
            for d in drop:
                delattr(block, d)
    aux = spec.get("aux")
    if aux:
        prefix = "block" if isinstance(model, Wrn) else "layer"
        n_stages = 3 if isinstance(model, Wrn) else 4
        after = int(aux["after"][len(prefix):])
        last_block = getattr(model, aux["after"])
        last_block = (last_block.layer if isinstance(model, Wrn) else last_block)[-1]
        nxt = getattr(model, f"{prefix}{after + 1}")
        nxt_block = (nxt.layer if isinstance(model, Wrn) else nxt)[0]
        cin = _block_io(last_block)[1]
        cout = _block_io(nxt_block)[1]
        classes = (model.fc.out_features)
        model.aux = AuxHead(cin, cout, classes, act)
        model.aux_after = aux["after"]
        model.aux_serve = bool(aux.get("serve", False))
        if model.aux_serve:
            for s in range(after + 1, n_stages + 1):
                delattr(model, f"{prefix}{s}")
            delattr(model, "fc")
            if isinstance(model, Wrn):
                delattr(model, "bn1")
                delattr(model, "relu")


def build(arch, width=1.0, activation="relu", classes=10, input_size=32, blocks=None, stem_stride=1):
    a = arch.lower().replace("_", "-")
    if a in ("resnet18", "resnet-18"):
        return ResNet(blocks or [2, 2, 2, 2], False, width, activation, classes, None, stem_stride)
    if a in ("resnet34", "resnet-34"):
        return ResNet(blocks or [3, 4, 6, 3], False, width, activation, classes, None, stem_stride)
    if a in ("resnet50", "resnet-50"):
        return ResNet(blocks or [3, 4, 6, 3], True, width, activation, classes, None, stem_stride)
    m = re.fullmatch(r"hrn-?(\d+)x(\d+)x(\d+)x?", a)
    if m:
        al, be, ga = (int(g) for g in m.groups())
        mults = [1, al, al * be, al * be * ga]
        return ResNet(blocks or [2, 2, 2, 2], False, width, activation, classes, mults, stem_stride)
    if a in ("resnet9", "resnet-9"):
        return ResNet9(width, activation, classes)
    if a in ("vgg11", "vgg16"):
        return Vgg(a, width, activation, classes, input_size)
    m = re.fullmatch(r"wrn-?(\d+)-(\d+)", a)
    if m:
        return Wrn(int(m.group(1)), int(m.group(2)), width, activation, classes)
    raise ValueError(f"unknown architecture {arch}")


def build_from_spec(spec):
    """Build from privlin's `spec.json` model entry, with DeepReDuce culling and thinning."""
    model = build(
        spec["arch"],
        spec.get("width", 1.0),
        spec.get("activation", "relu"),
        spec.get("classes", 10),
        spec.get("input_size", 32),
        spec.get("blocks"),
        spec.get("stem_stride", 1),
    )
    apply_removal(model, spec.get("cull", []), spec.get("thin"))
    apply_reshape(model, spec, spec.get("activation", "relu"))
    return model


def site_stage(model, name):
    """Stage of a site as privlin names it (privlin's nn/removal.rs)."""
    if (isinstance(model, ResNet) and name == "act1") or (isinstance(model, ResNet9) and name == "prep.act"):
        return "stem"
    if isinstance(model, Wrn) and name == "relu":
        return "final"
    return name.split(".")[0]


def apply_removal(model, cull, thin):
    """Mark culled and thinned sites removed (the identity), as privlin's nn/removal.rs does."""
    names = [n for n, _ in sites(model)]
    body = []
    for n in names:
        st = site_stage(model, n)
        if st not in ("stem", "final") and st not in body:
            body.append(st)
    culled = set()
    for c in cull:
        c = c.lower()
        if c.startswith("s") and c[1:].isdigit() and 1 <= int(c[1:]) <= len(body):
            c = body[int(c[1:]) - 1]
        culled.add(c)
    mods = dict(sites(model))
    for n in names:
        mods[n].removed = site_stage(model, n) in culled
    if thin:
        for st in body:
            if st in culled:
                continue
            j = 0
            for n in names:
                if site_stage(model, n) != st:
                    continue
                if (thin == "second" and j % 2 == 1) or (thin == "first" and j % 2 == 0):
                    mods[n].removed = True
                j += 1


def load_safetensors(model, path):
    """Load privlin weights; PyTorch's num_batches_tracked buffers are the only keys allowed missing."""
    from safetensors.torch import load_file

    state = load_file(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def save_safetensors(model, path):
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, path)


def sites(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, Site)]
