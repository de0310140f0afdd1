"""Where the network looks: gradient maps (saliency, DeconvNet, guided backprop, SmoothGrad), Grad-CAM, and
occlusion with incremental inference."""

from .grad_cam import GradCam, grad_cam, guided_grad_cam, last_conv_name
from .gradients import deconvnet, guided_backprop, input_gradient, saliency, smoothgrad
from .occlusion import occlusion, occlusion_grid

__all__ = [
    "GradCam", "deconvnet", "grad_cam", "guided_backprop", "guided_grad_cam", "input_gradient", "last_conv_name",
    "occlusion", "occlusion_grid", "saliency", "smoothgrad",
]
