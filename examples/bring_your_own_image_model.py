"""Protect photos against an image classifier you already have (a torchvision-style model).

Image protectors attack a classifier through :class:`~sklearn_privacy.image.ImageClassifier`,
which bundles the model with its deployment preprocessing. Any torch network works: a
torchvision or timm model with pretrained weights is wrapped the same way as the small
network built here. The wrapper

- resizes the photos (any size, uint8 or floats in [0, 1]) to the model's input size,
- applies the model's own preprocessing (here a normalisation module, as the ImageNet
  models expect; ``mean=``/``std=`` arguments do the same),
- feeds channels-first float tensors on the chosen device, in eval mode,

and every step is differentiable, so P-FGSM's gradients flow through the preprocessing
into the pixels. Success is then verified on the saved 8-bit images.

Offline and self-contained: the network is defined below (no torchvision import, no
download) with random weights, and the photos are synthetic. A few seconds on one CPU
core. With torchvision installed, the same code runs with, e.g.::

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    model = torchvision.models.resnet18(weights=weights)
    clf = ImageClassifier(model, input_size=224, mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225))
"""

import numpy as np
import torch
from torch import nn

from sklearn_privacy.image import ImageClassifier, PrivateFGSM, topk_out_rate
from sklearn_privacy.metrics import psnr


# 1. A network shaped like torchvision's ResNets: stem, residual stages, pooled head.
class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = (
            nn.Identity() if stride == 1 and in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                               nn.BatchNorm2d(out_ch))
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class TinyResNet(nn.Module):
    def __init__(self, num_classes=10, width=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(width, width, 1)
        self.layer2 = BasicBlock(width, 2 * width, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Normalize(nn.Module):
    """The model's own preprocessing: ImageNet mean/std normalisation."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


torch.manual_seed(0)
model = TinyResNet(num_classes=10)  # your trained network would go here
model.train()  # left in training mode on purpose: the wrapper evaluates in eval mode

# 2. Wrap it with its preprocessing: resize to 64x64, then normalise.
clf = ImageClassifier(
    model,
    input_size=64,
    preprocess=Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    device="cpu",
)

# 3. A few synthetic 48x48 photos (any size works: the wrapper resizes them).
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(6, 48, 48, 3), dtype=np.uint8)
labels = clf.predict(images)  # what the model sees in the clean photos
print("predicted classes, clean:    ", labels.tolist())

# 4. P-FGSM differentiates through resize + normalisation to hide the predicted class.
protector = PrivateFGSM(clf, eps=8 / 255, k=1, max_iter=50, device="cpu")
protected = protector.fit_transform(images)
print("predicted classes, protected:", clf.predict(protected).tolist())
print(f"class hidden (top-1) for {topk_out_rate(clf, protected, labels, k=1):.0%} of the "
      f"photos; largest pixel change {np.abs(protected.astype(int) - images).max()} / 255; "
      f"PSNR {np.mean(psnr(images, protected)):.1f} dB")
print("the model is still in training mode:", model.training)
