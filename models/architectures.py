"""Network definitions of the training scripts in models/ (PyTorch ``nn.Module``).

Every network uses only modules that map one-to-one onto eventsnn Graph ops (Conv2d,
BatchNorm2d, ReLU *modules* -- never ``F.relu`` --, MaxPool2d, AdaptiveAvgPool2d(1),
Flatten, Linear, Dropout, Identity, and ``+`` for residual additions).
"""

import torch.nn as nn


def vgg(cfg, in_ch=1, in_size=28, hidden=128, n_classes=10, dropout=0.3):
    """VGG-style ``nn.Sequential``: ``cfg`` lists conv widths and ``"M"`` (2x2 max pool).

    Each conv is 3x3, padding 1, no bias, followed by BatchNorm and ReLU. The head is
    flatten - linear ``hidden`` - ReLU - dropout - linear ``n_classes`` (``hidden=0``: a
    single linear layer).
    """
    layers, c, size = [], in_ch, in_size
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    layers.append(nn.Flatten())
    if hidden:
        layers += [nn.Linear(c * size * size, hidden), nn.ReLU(), nn.Dropout(dropout),
                   nn.Linear(hidden, n_classes)]
    else:
        layers.append(nn.Linear(c * size * size, n_classes))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN, plus shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 strided conv + BN when the shape changes.
    """

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016, Sec. 4.2) for small images.

    Stem conv3x3 ``widths[0]``-BN-ReLU, then one stage per width with ``blocks`` basic blocks
    (the first block of every stage after the first has stride 2), global average pool,
    linear. Depth = 6 * blocks + 2 for three stages (blocks=1: ResNet-8, 3: ResNet-20).
    """

    def __init__(self, blocks=1, widths=(16, 32, 64), in_ch=1, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(BasicBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))
