"""Images made by the network: representation inversion, class models, channel images, and correspondences
between two images in a layer's features."""

from .activation_maximization import Visualization, channel_visualization, class_model
from .correspondence import Correspondence, correspondence
from .image_parameterization import (ImageParameterization, colour_correlation_sqrt, composite,
                                     random_background, random_transform)
from .inversion import Inversion, invert, invert_layers

__all__ = ["Correspondence", "ImageParameterization", "Inversion", "Visualization", "channel_visualization",
           "class_model", "colour_correlation_sqrt", "composite", "correspondence", "invert", "invert_layers",
           "random_background", "random_transform"]
