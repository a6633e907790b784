"""Networks: plain ``torch.nn.Module`` s built from the tasks they predict, no Lightning.

Every net takes the task mapping (name -> number of classes) as its first argument and returns a dict
of logits, one entry per head (a single-task net may return a plain tensor). Nets with a backbone keep
it in ``trunk``, so that the classifier can freeze it or give it its own learning rate.
"""

from medcls.nets.canet import CANet, JointBaseline
from medcls.nets.timm import TimmNet
from medcls.nets.torchvision import TorchvisionNet
from medcls.nets.tutorial import TutorialNet

__all__ = ["CANet", "JointBaseline", "TimmNet", "TorchvisionNet", "TutorialNet"]
