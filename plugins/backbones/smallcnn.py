"""`smallcnn`: a compact three-block CNN for digit-sized images."""

from torch import nn

from tlbench import hookimpl
from tlbench.plugin.errors import UserError

MAX_WIDTH = 1024


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three conv-bn-relu blocks (two 2x max-pools), global average pooling: ``4 * width`` features."""

    def __init__(self, input_shape, width: int = 32):
        super().__init__()
        channels = input_shape[0]
        self.features = nn.Sequential(
            *_block(channels, width),
            nn.MaxPool2d(2),
            *_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_features = 4 * width

    def forward(self, x):
        return self.features(x)

    def stages(self) -> list[nn.Module]:
        """The three conv blocks, input first (see tlbench.training.stages); ``partial`` freezes two."""
        return [self.features[0:4], self.features[4:8], self.features[8:]]

    default_freeze = 2


def check_options(options: dict) -> None:
    """Value checks before any training (types are already checked against the defaults)."""
    width = options.get("width", 32)
    if not 1 <= width <= MAX_WIDTH:
        raise UserError(f"smallcnn option `width` = {width} is out of range; use 1..{MAX_WIDTH} (channels of the first block; default 32)")


@hookimpl
def register_backbones(register):
    register(
        "smallcnn",
        SmallCNN,
        modality="image",
        defaults={"width": 32},
        option_ranges={"width": (1, MAX_WIDTH)},
        check_options=check_options,
        description="3-block CNN for digit-sized images",
    )
