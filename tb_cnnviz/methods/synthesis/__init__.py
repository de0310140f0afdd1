"""Images made by the network: representation inversion, class models, channel images, and correspondences
between two images in a layer's features."""

from .activation_maximization import Visualization, channel_visualization, class_model
from .correspondence import Correspondence, correspondence
from .inversion import Inversion, invert

__all__ = ["Correspondence", "Inversion", "Visualization", "channel_visualization", "class_model", "correspondence", "invert"]
