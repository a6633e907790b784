"""Networks: plain ``torch.nn.Module`` s built from the tasks they predict, no Lightning.

Every net takes the task mapping (name -> number of classes) as its first argument and returns a dict
of logits, one entry per head (a single-task net may return a plain tensor). Nets with a backbone keep
it in ``trunk``, so that the classifier can freeze it or give it its own learning rate. Nets with options that
load weights files name them, with the values that load none, in ``weights_options``: a checkpoint holds the
weights, so :func:`without_weights_files` gives the config that rebuilds its net without them.
"""

from medcls.nets.canet import CANet, JointBaseline
from medcls.nets.timm import TimmNet
from medcls.nets.torchvision import TorchvisionNet
from medcls.nets.tutorial import TutorialNet
from medcls.nets.weights import without_weights_files

__all__ = ["CANet", "JointBaseline", "TimmNet", "TorchvisionNet", "TutorialNet", "without_weights_files"]
